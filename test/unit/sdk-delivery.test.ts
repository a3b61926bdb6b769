/** Delivery: the SDK's acknowledged-delivery bookkeeping for one gateway (PROTOCOL.md §5a): admit, replay, held roster, acks. */
import t from 'tap'
import { Delivery } from '../../src/sdk/delivery.js'

const alice = { user: 'alice', claims: {}, params: {} }

/** A delivery on its first link, synced at 0, that has admitted 1..n. */
function admitted (n: number): Delivery {
  const delivery = new Delivery('s1')
  delivery.attach()
  delivery.sync(0, [])
  for (let seq = 1; seq <= n; seq++) delivery.admit(seq)
  return delivery
}

t.test('a first sync gives the roster at once; events above it are new, each once', async (t) => {
  const delivery = new Delivery('s1')
  delivery.attach()
  t.same(delivery.sync(0, [alice]), [alice], 'nothing taken yet: the listed users are the roster now')
  t.equal(delivery.admit(1), 'new', 'seq 1 is new')
  t.equal(delivery.admit(2), 'new', 'seq 2 is new')
  t.equal(delivery.admit(2), 'backwards', 'seq 2 again on the same link is backwards')
})

t.test('acks: only what handlers completed, only once, with the backlog counting the rest', async (t) => {
  const delivery = admitted(3)
  t.equal(delivery.takeAck(), undefined, 'nothing completed: nothing to ack')
  delivery.completed(2)
  t.equal(delivery.backlog(), 2, 'two completed and unacked')
  t.equal(delivery.takeAck(), 2, 'ack 2')
  t.equal(delivery.takeAck(), undefined, 'not twice')
  delivery.completed(3)
  t.equal(delivery.takeAck(), 3, 'then 3')
})

t.test('after a blip: a sync below what was taken holds the roster until the replay has gone by', async (t) => {
  const delivery = admitted(3)
  delivery.completed(1)
  delivery.takeAck()
  delivery.attach()
  t.equal(delivery.sync(1, [alice]), undefined, 'events 2-3 will be replayed: the roster is held')
  t.equal(delivery.admit(2), 'replayed', 'seq 2 was taken before the blip: replayed')
  t.equal(delivery.replayed(2, { event: 'open', user: 'bob', params: { room: '1' } }), undefined, 'the held roster waits for seq 3')
  t.equal(delivery.admit(3), 'replayed', 'seq 3 too')
  const roster = delivery.replayed(3, { event: 'close', user: 'alice', params: {} })
  t.same(roster, { users: [{ user: 'bob', claims: {}, params: { room: '1' } }], seq: 1 }, 'with seq 3 by, the roster is the sync plus the replay\'s effects')
  t.equal(delivery.admit(4), 'new', 'seq 4 is new')
})

t.test('bad input: a manual ack beyond what was handed over acknowledges only what was handed over', async (t) => {
  const delivery = admitted(3)
  delivery.allow(1_000_000)
  t.equal(delivery.takeAck(), 3, 'capped at the highest seq received')
  delivery.admit(4)
  t.equal(delivery.takeAck(), undefined, 'and it does not cover seq 4, handed over after it')
})

t.test('bad input: nothing is acked on a new link before its sync, and a replay with no held roster changes nothing', async (t) => {
  const delivery = admitted(3)
  delivery.completed(3)
  delivery.attach()
  t.equal(delivery.takeAck(), undefined, 'a fresh link has received nothing: no ack names a seq it did not send')
  t.equal(delivery.replayed(2, { event: 'open', user: 'bob', params: {} }), undefined, 'no held roster: nothing released')
  t.equal(delivery.release(), undefined, 'and nothing to release')
  t.equal(delivery.sync(3, [alice])?.length, 1, 'a sync at the mark hands the roster over at once')
  t.equal(delivery.admit(3), 'backwards', 'a seq at the sync mark is backwards')
  t.equal(delivery.admit(-1), 'backwards', 'a negative seq is backwards')
})
