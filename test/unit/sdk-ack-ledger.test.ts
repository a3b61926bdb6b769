/** AckLedger: the SDK's acknowledged-ledger bookkeeping for one gateway (PROTOCOL.md §5a): arrival, replay, pending roster, acks. */
import t from 'tap'
import { AckLedger } from '../../src/sdk/ack-ledger.js'

const alice = { user: 'alice', claims: {}, params: {} }

/** A ledger on its first link, synced at 0, that has received 1..n. */
function received (n: number): AckLedger {
  const ledger = new AckLedger('s1')
  ledger.attach()
  ledger.sync(0, [])
  for (let seq = 1; seq <= n; seq++) ledger.receive(seq)
  return ledger
}

t.test('a first sync gives the roster at once; events above it are new, each once', async (t) => {
  const ledger = new AckLedger('s1')
  ledger.attach()
  t.same(ledger.sync(0, [alice]), [alice], 'nothing taken yet: the listed users are the roster now')
  t.equal(ledger.receive(1), 'new', 'seq 1 is new')
  t.equal(ledger.receive(2), 'new', 'seq 2 is new')
  t.equal(ledger.receive(2), 'backwards', 'seq 2 again on the same link is backwards')
})

t.test('acks: only what handlers completed, only once, with the backlog counting the rest', async (t) => {
  const ledger = received(3)
  t.equal(ledger.takeAck(), undefined, 'nothing completed: nothing to ack')
  ledger.completed(2)
  t.equal(ledger.backlog(), 2, 'two completed and unacked')
  t.equal(ledger.takeAck(), 2, 'ack 2')
  t.equal(ledger.takeAck(), undefined, 'not twice')
  ledger.completed(3)
  t.equal(ledger.takeAck(), 3, 'then 3')
})

t.test('after a blip: a sync below what was taken keeps the roster pending until the replay has gone by', async (t) => {
  const ledger = received(3)
  ledger.completed(1)
  ledger.takeAck()
  ledger.attach()
  t.equal(ledger.sync(1, [alice]), undefined, 'events 2-3 will be replayed: the roster is pending')
  t.equal(ledger.receive(2), 'replayed', 'seq 2 was taken before the blip: replayed')
  t.equal(ledger.replayed(2, { event: 'open', user: 'bob', params: { room: '1' } }), undefined, 'the pending roster waits for seq 3')
  t.equal(ledger.receive(3), 'replayed', 'seq 3 too')
  const roster = ledger.replayed(3, { event: 'close', user: 'alice', params: {} })
  t.same(roster, { users: [{ user: 'bob', claims: {}, params: { room: '1' } }], seq: 1 }, 'with seq 3 by, the roster is the sync plus the replay\'s effects')
  t.equal(ledger.receive(4), 'new', 'seq 4 is new')
})

t.test('bad input: a manual ack beyond what was handed over acknowledges only what was handed over', async (t) => {
  const ledger = received(3)
  ledger.allow(1_000_000)
  t.equal(ledger.takeAck(), 3, 'capped at the highest seq received')
  ledger.receive(4)
  t.equal(ledger.takeAck(), undefined, 'and it does not cover seq 4, handed over after it')
})

t.test('bad input: nothing is acked on a new link before its sync, and a replay with no pending roster changes nothing', async (t) => {
  const ledger = received(3)
  ledger.completed(3)
  ledger.attach()
  t.equal(ledger.takeAck(), undefined, 'a fresh link has received nothing: no ack names a seq it did not send')
  t.equal(ledger.replayed(2, { event: 'open', user: 'bob', params: {} }), undefined, 'no pending roster: nothing comes back')
  t.equal(ledger.takePending(), undefined, 'and nothing pending')
  t.equal(ledger.sync(3, [alice])?.length, 1, 'a sync at the mark hands the roster over at once')
  t.equal(ledger.receive(3), 'backwards', 'a seq at the sync mark is backwards')
  t.equal(ledger.receive(-1), 'backwards', 'a negative seq is backwards')
})
