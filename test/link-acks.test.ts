/** Acknowledged delivery, gateway side (PROTOCOL.md §5a): seq, the unacknowledged buffer, replay on reconnect. */
import t from 'tap'
import type { TestBackend } from './helpers/backend.js'
import { gatewayWithBackends } from './helpers/setup.js'
import { connect } from './helpers/client.js'
import { tokenFor } from './helpers/tokens.js'

type Teardown = { teardown (fn: () => unknown): void }

/** A game endpoint whose link has acks (or not), with these queue settings. */
async function ackedGame (t: Teardown, queue: Record<string, unknown> = {}, acks = true) {
  // this backend never acks what it is sent last, so each teardown's drain waits out its bound: keep it short
  const { gateway, backends, hellos } = await gatewayWithBackends(t, [
    { name: 'game', path: '/game/:matchId', link: { acks, minReconnectDelayMs: 10, maxReconnectDelayMs: 50 } }
  ], { queue, server: { host: '127.0.0.1', port: 0, shutdownTimeoutMs: 300 } })
  return { backend: backends.game, gateway, hello: hellos.game }
}

const brief = (e: { event: string, user?: string, seq?: unknown, data?: unknown }): unknown[] => [e.event, e.user, e.seq, e.data]

t.test('hello says acks; every event carries a seq that grows by one; sync says where it stands', async (t) => {
  const { backend, gateway, hello } = await ackedGame(t)
  t.equal(hello.acks, true, 'hello says the link has acks')
  t.same(await backend.next('sync'), { event: 'sync', users: [], seq: 0 }, 'the first sync is as of seq 0')
  const alice = await connect(gateway.url('/game/m'), { token: tokenFor('alice') })
  alice.ws.send('a')
  alice.ws.close(1000)
  t.same(brief(await backend.events.next()), ['open', 'alice', 1, undefined], 'open is seq 1')
  t.same(brief(await backend.events.next()), ['message', 'alice', 2, 'a'], 'the message is seq 2')
  t.same(brief(await backend.events.next()), ['close', 'alice', 3, undefined], 'close is seq 3')
})

async function reconnectAfterKill (backend: TestBackend): Promise<void> {
  backend.kill()
  await backend.next('hello')
}

t.test('a dropped link replays every unacknowledged event with its original seq, after a sync as of the last ack', async (t) => {
  const { backend, gateway } = await ackedGame(t)
  await backend.next('sync')
  const alice = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  const bob = await connect(gateway.url('/game/m1'), { token: tokenFor('bob') })
  await backend.next('open', 'alice') // seq 1
  await backend.next('open', 'bob') // seq 2
  for (let i = 0; i < 5; i++) alice.ws.send(String(i)) // seq 3-7
  for (let i = 0; i < 5; i++) await backend.next('message', 'alice')
  backend.send({ action: 'ack', seq: 4 })
  // the ack is processed before the next event the gateway sees from alice
  bob.ws.close(1000, 'leaving') // seq 8
  await backend.next('close', 'bob')

  await reconnectAfterKill(backend)
  const sync = await backend.next('sync')
  t.equal(sync.seq, 4, 'the roster is as of the last ack')
  t.same((sync.users as Array<{ user: string }>).map((u) => u.user), ['alice', 'bob'], 'bob left after the ack, so he is still in this sync')
  const replay = [await backend.events.next(), await backend.events.next(), await backend.events.next(), await backend.events.next()]
  t.same(replay.map(brief), [
    ['message', 'alice', 5, 2],
    ['message', 'alice', 6, 3],
    ['message', 'alice', 7, 4],
    ['close', 'bob', 8, undefined]
  ], 'then every unacknowledged event, in order, with its original seq')
  alice.ws.send('new')
  t.same(brief(await backend.events.next()), ['message', 'alice', 9, 'new'], 'new events continue the sequence')

  // a send after the ack in one frame: once alice has it, the ack was processed
  backend.send([{ action: 'ack', seq: 9 }, { action: 'send', user: 'alice', data: 'acked' }])
  t.equal(await alice.next(), 'acked', 'the send after the ack arrives')
  await reconnectAfterKill(backend)
  const clean = await backend.next('sync')
  t.same([clean.seq, (clean.users as Array<{ user: string }>).map((u) => u.user)], [9, ['alice']], 'after a full ack nothing is replayed')
  alice.ws.send('after')
  t.same(brief(await backend.events.next()), ['message', 'alice', 10, 'after'], 'the sequence goes on after the full ack')
})

t.test('a backend that never acks fills the buffer: 1013, counted', async (t) => {
  const { backend, gateway } = await ackedGame(t, { maxEvents: 5 })
  await backend.next('sync')
  const alice = await connect(gateway.url('/game/x'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  for (let i = 0; i < 6; i++) alice.ws.send(String(i))
  t.equal((await alice.closed).code, 1013, 'written but unacknowledged events count against queue.maxEvents')
  t.equal(await gateway.metric('gatehouse_dropped_events_total', { reason: 'queue_full' }), 1, 'the overflow is counted once')
  const sync = await backend.next('sync')
  t.same([sync.users, sync.seq], [[], 5], 'the link is reset: empty roster, everything sent counts as acknowledged')
})

t.test('bad acks are counted and do not break the link', async (t) => {
  const { backend, gateway } = await ackedGame(t)
  await backend.next('sync')
  const alice = await connect(gateway.url('/game/x'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  backend.send({ action: 'ack', seq: 99 })
  backend.send({ action: 'ack', seq: -1 })
  backend.send({ action: 'ack' })
  alice.ws.send('still fine')
  t.same(brief(await backend.next('message', 'alice')), ['message', 'alice', 2, 'still fine'], 'the link still carries events after bad acks')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { reason: 'invalid_message' }), 3, 'the three bad acks are counted')
  await reconnectAfterKill(backend)
  const sync = await backend.next('sync')
  t.equal(sync.seq, 1, 'the ack of 99 acknowledged only what had been sent (seq 1)')
  t.same(brief(await backend.events.next()), ['message', 'alice', 2, 'still fine'], 'event 2 was sent after it, so it is replayed')
})

t.test('without acks, an ack is refused and events carry no seq', async (t) => {
  const { backend, gateway, hello } = await ackedGame(t, {}, false)
  t.equal(hello.acks, undefined, 'hello does not claim acks')
  t.same(await backend.next('sync'), { event: 'sync', users: [] }, 'the sync has no seq')
  await connect(gateway.url('/game/x'), { token: tokenFor('alice') })
  t.equal((await backend.next('open', 'alice')).seq, undefined, 'events carry no seq')
  backend.send({ action: 'ack', seq: 1 })
  await gateway.logged(/backend sent an ack, but backend.acks is off/)
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { reason: 'invalid_message' }), 1, 'the refused ack is counted')
})
