/** EventQueue: a link's uncommitted events, bounded, split by a cursor into written and unwritten. */
import t from 'tap'
import { EventQueue, type OutboundEvent } from '../../src/backend-link/event-queue.js'

function event (seq: number, bytes = 10): OutboundEvent {
  return { kind: 'message', user: `u${seq % 7}`, text: 'x'.repeat(bytes), bytes, seq }
}

const seqs = (events: OutboundEvent[]): number[] => events.map((e) => e.seq ?? -1)
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

function filled (count: number, maxEvents = 10_000): EventQueue {
  const queue = new EventQueue(maxEvents, 1_000_000, 1_000_000)
  for (let seq = 1; seq <= count; seq++) queue.push(event(seq))
  return queue
}

t.test('events come out in the order they went in, in batches bounded by bytes', async (t) => {
  const queue = filled(5)
  t.same(seqs(queue.nextBatch(25)), [1, 2], 'a 25-byte batch holds two 10-byte events')
  t.same(seqs(queue.nextBatch(1000)), [3, 4, 5], 'the next batch continues where the last stopped')
  t.same(queue.nextBatch(1000), [], 'nothing left to write')
  t.equal(queue.length, 5, 'written is not committed: all five still held')
  t.equal(queue.unwritten, 0, 'none unwritten')
  t.equal(queue.bytes, 50, 'bytes count every held event')
})

t.test('bounds: a push past maxEvents or maxBytes is refused and queues nothing', async (t) => {
  const byCount = new EventQueue(2, 1000, 1000)
  t.ok(byCount.push(event(1)) === 'queued' && byCount.push(event(2)) === 'queued', 'two fit a queue of two')
  t.equal(byCount.push(event(3)), 'full', 'a third is refused')
  t.equal(byCount.length, 2, 'the refused event is not queued')
  const byBytes = new EventQueue(100, 25, 1000)
  t.ok(byBytes.push(event(1)) === 'queued' && byBytes.push(event(2)) === 'queued', '20 bytes fit 25')
  t.equal(byBytes.push(event(3)), 'full', '30 bytes would not')
  t.equal(byBytes.bytes, 20, 'the refused event adds no bytes')
  byBytes.nextBatch(100)
  byBytes.releaseWritten()
  t.equal(byBytes.push(event(3)), 'queued', 'committing frees room again')
})

t.test('releaseWritten commits what was written, nothing more', async (t) => {
  const queue = filled(4)
  queue.nextBatch(20)
  t.same(seqs(queue.releaseWritten()), [1, 2], 'the two written events are committed, in order')
  t.equal(queue.length, 2, 'the unwritten two stay')
  t.equal(queue.bytes, 20, 'and only their bytes count')
  t.same(seqs(queue.nextBatch(1000)), [3, 4], 'the unwritten two are written next')
})

t.test('releaseThrough commits written events up to an acked seq; lastWrittenSeq follows the cursor', async (t) => {
  const queue = filled(6)
  t.equal(queue.lastWrittenSeq, 0, 'nothing written yet')
  queue.nextBatch(40)
  t.equal(queue.lastWrittenSeq, 4, 'four written')
  t.same(seqs(queue.releaseThrough(2)), [1, 2], 'an ack of 2 commits 1 and 2')
  t.same(seqs(queue.releaseThrough(2)), [], 'the same ack again commits nothing')
  t.same(seqs(queue.releaseThrough(4)), [3, 4], 'an ack of 4 commits 3 and 4')
  t.equal(queue.lastWrittenSeq, 0, 'nothing written is held any more')
  t.equal(queue.length, 2, 'the unwritten 5 and 6 stay')
})

t.test('rewind makes every uncommitted event unwritten again, in order, for a new link', async (t) => {
  const queue = filled(5)
  queue.nextBatch(30)
  queue.releaseThrough(1)
  queue.rewind()
  t.equal(queue.unwritten, 4, 'events 2-5 are unwritten again')
  t.same(seqs(queue.nextBatch(1000)), [2, 3, 4, 5], 'and written again from the first uncommitted')
})

t.test('clear drops every uncommitted event, written or not, and returns them', async (t) => {
  const queue = filled(5)
  queue.nextBatch(20)
  queue.releaseWritten()
  t.same(seqs(queue.clear()), [3, 4, 5], 'the three uncommitted events come back')
  t.equal(queue.length + queue.bytes + queue.unwritten, 0, 'the queue is empty')
})

t.test('compaction of a long committed prefix keeps contents, cursor and bytes', async (t) => {
  const queue = filled(3000)
  queue.nextBatch(25_000)
  t.same(seqs(queue.releaseThrough(1600)), range(1, 1600), 'an ack of 1600 commits 1-1600, past the compaction threshold')
  t.equal(queue.length, 1400, '1400 uncommitted left')
  t.equal(queue.unwritten, 500, '500 of them unwritten')
  t.equal(queue.bytes, 14_000, 'bytes of the 1400 left')
  t.equal(queue.lastWrittenSeq, 2500, 'the last written is still 2500')
  t.same(seqs(queue.nextBatch(30)), [2501, 2502, 2503], 'writing resumes after 2500')
  queue.rewind()
  t.same(seqs(queue.nextBatch(30)), [1601, 1602, 1603], 'a rewind starts at the first uncommitted, 1601')
  queue.nextBatch(100_000)
  t.same(seqs(queue.releaseThrough(2999)), range(1601, 2999), 'an ack of 2999 commits exactly 1601-2999')
  t.same(seqs(queue.clear()), [3000], 'only 3000 is left')
})

t.test('repeated small releases across many compactions lose and repeat nothing', async (t) => {
  const queue = new EventQueue(5000, 1_000_000, 1_000_000)
  const committed: number[] = []
  let next = 1
  for (let round = 0; round < 40; round++) {
    while (queue.push(event(next)) === 'queued') next++
    queue.nextBatch(10 * 2000)
    committed.push(...seqs(queue.releaseThrough(committed.length + 1700)))
  }
  committed.push(...seqs(queue.clear()))
  t.same(committed, range(1, next - 1), 'every pushed event committed or cleared once, in order')
})

t.test('bad input: an ack beyond what was written commits only the written events', async (t) => {
  const queue = filled(5)
  queue.nextBatch(20)
  t.same(seqs(queue.releaseThrough(1_000_000)), [1, 2], 'an ack of a seq never sent commits the two written, not the unwritten')
  t.equal(queue.unwritten, 3, 'the three unwritten stay unwritten')
  t.same(seqs(queue.releaseThrough(-5)), [], 'a negative ack commits nothing')
})

t.test('bad input: an event bigger than the whole byte bound is refused; a batch smaller than one event still holds one', async (t) => {
  const queue = new EventQueue(10, 100, 1000)
  t.equal(queue.push(event(1, 101)), 'full', 'a 101-byte event never fits 100 bytes')
  t.equal(queue.push(event(2, 50)), 'queued', 'a 50-byte event does')
  t.same(seqs(queue.nextBatch(0)), [2], 'a zero-byte batch still carries one event, so writing always progresses')
})

t.test("one user's share: messages past maxClientBytes are refused for that user alone; closes always fit", async (t) => {
  const queue = new EventQueue(10, 1000, 25)
  const from = (user: string, kind: OutboundEvent['kind'] = 'message'): OutboundEvent => ({ kind, user, text: 'x'.repeat(10), bytes: 10 })
  t.equal(queue.push(from('a')), 'queued', "a's first 10 bytes")
  t.equal(queue.push(from('a')), 'queued', "a's 20 bytes")
  t.equal(queue.push(from('a')), 'over_share', 'a third would pass 25 bytes: over its share')
  t.equal(queue.push(from('b')), 'queued', 'b has a share of its own')
  t.equal(queue.bytesOf('a'), 20, "the refused event adds nothing to a's count")
  t.equal(queue.push(from('a', 'close')), 'queued', "a's close is queued whatever its share")
  for (let i = 0; i < 6; i++) queue.push(from(`c${i}`))
  t.equal(queue.length, 10, 'the queue is at maxEvents')
  t.equal(queue.push(from('d')), 'full', 'a message past maxEvents is refused')
  t.equal(queue.push(from('d', 'close')), 'queued', 'a close past maxEvents still fits')
  queue.nextBatch(1000)
  queue.releaseWritten()
  t.equal(queue.bytesOf('a'), 0, "committing frees a's share")
})
