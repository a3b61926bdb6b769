/** The SDK's side of acknowledged delivery (PROTOCOL.md §5a), against a stand-in gateway on a real socket. */
import { once } from 'node:events'
import t from 'tap'
import { GatehouseBackend, type BackendOptions, type EventDelivery } from '../src/sdk/index.js'
import { BACKEND_TOKEN, call, captureLogger, fakeGateway, hello, recorder, type FakeGateway } from './sdk-fixtures.js'
import { Inbox } from './helpers/waiter.js'

type Test = { teardown (fn: () => unknown): void }

async function startBackend (t: Test, options: BackendOptions = {}) {
  const logger = captureLogger()
  const { handlers, calls } = recorder()
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger, linkGraceMs: 60000, ...options }, handlers)
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  return { backend, url, calls, logger }
}

const ackedHello = (gateway: string, session?: string): Record<string, unknown> => ({ ...hello(gateway, 'lobby', 1, session), acks: true })
const claims = { sub: 'x' }
const open = (user: string, seq: number) => ({ event: 'open', user, claims, params: {}, seq })
const message = (user: string, data: unknown, seq: number) => ({ event: 'message', user, params: {}, data, seq })
const close = (user: string, seq: number) => ({ event: 'close', user, params: {}, code: 1000, reason: 'bye', seq })
const entry = (user: string) => ({ user, claims, params: {} })

/** The next ack at or above `seq`. */
async function ackFor (gateway: FakeGateway, seq: number): Promise<number> {
  const ack = await gateway.actions.next((a) => a.action === 'ack' && (a.seq as number) >= seq, 10000, `an ack for ${seq}`)
  return ack.seq as number
}

t.test('acks are cumulative and go out only after the handlers have returned', async (t) => {
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  let finished = false
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, {
    onMessage: async (_user, data) => {
      if (data !== 'slow') return
      await gate
      finished = true
    }
  })
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  const gateway = await fakeGateway(url, { token: BACKEND_TOKEN })
  gateway.send([ackedHello('gw-1'), { event: 'sync', users: [], seq: 0 }, open('alice', 1), message('alice', 'fast', 2), message('alice', 'slow', 3)])
  t.equal(await ackFor(gateway, 1), 2, 'the events whose handlers returned are acked in one go')
  t.notOk(finished, 'the slow handler has not finished yet')
  release()
  t.equal(await ackFor(gateway, 3), 3, 'the slow event is acked once its handler finished')
  t.ok(finished, 'the ack for an async handler follows its completion')

  const batch = Array.from({ length: 1500 }, (_, i) => message('alice', i, 4 + i))
  gateway.send(batch)
  t.equal(await ackFor(gateway, 4), 1003, 'a thousand events waiting are acked at once')
  t.equal(await ackFor(gateway, 1004), 1503, 'the rest follow')
  t.equal(gateway.actions.all.filter((a) => a.action !== 'ack').length, 0, 'nothing but acks')
})

t.test('manual acks: only what the service acknowledges, never beyond what it was handed', async (t) => {
  const handed = new Inbox<EventDelivery>()
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger(), acks: 'manual' }, {
    onOpen: (_user, _claims, _params, delivery) => handed.push(delivery),
    onMessage: (_user, _data, delivery) => handed.push(delivery)
  })
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  const gateway = await fakeGateway(url, { token: BACKEND_TOKEN })
  gateway.send([ackedHello('gw-1'), { event: 'sync', users: [], seq: 0 }, open('alice', 1), message('alice', 'a', 2), message('alice', 'b', 3), message('alice', 'c', 4)])
  const seen = [await handed.next(), await handed.next(), await handed.next(), await handed.next()]
  t.same(seen.map((d) => d.seq), [1, 2, 3, 4], 'the service is handed every event, in seq order')
  seen[1].ack()
  t.equal(await ackFor(gateway, 1), 2, 'the first ack is the one the service gave: nothing went out on its own')
  seen[0].ack()
  seen[3].ack()
  t.equal(await ackFor(gateway, 3), 4, 'acking 1 and 4 acks up to 4')
  t.equal(gateway.actions.all.filter((a) => a.action === 'ack').length, 2, 'an ack below one already sent adds nothing')
})

t.test('a blip between gateway and backend: the replay is skipped and the roster stays right', async (t) => {
  const { backend, url, calls } = await startBackend(t)
  const first = await fakeGateway(url, { token: BACKEND_TOKEN })
  first.send([ackedHello('gw-1'), { event: 'sync', users: [], seq: 0 }, open('alice', 1), open('bob', 2)])
  t.equal(await ackFor(first, 2), 2, 'the first link acks both opens')
  first.send([message('bob', 'hi', 3), close('alice', 4)])
  t.equal(await call(calls, 'close alice'), 'close alice 1000 bye', 'alice\'s close reaches onClose')
  // the link dies before the gateway reads the ack for 3 and 4
  const dropped = once(backend, 'linkClosed')
  first.ws.terminate()
  await dropped

  const second = await fakeGateway(url, { token: BACKEND_TOKEN })
  const settled = once(backend, 'synced')
  second.send([ackedHello('gw-1'), { event: 'sync', users: [entry('alice'), entry('bob')], seq: 2 }, message('bob', 'hi', 3), close('alice', 4), message('bob', 'new', 5), open('carol', 6)])
  t.equal(await call(calls, 'message bob "new"'), 'message bob "new"', 'the new message after the replay is handled')
  t.equal(await call(calls, 'open carol'), 'open carol {}', 'the new open after the replay is handled')
  t.match((await settled)[0], { gateway: 'gw-1', users: 1, seq: 2 }, 'synced once the replay is by: the sync as of 2, brought forward')
  t.same(calls.all, ['open alice {}', 'open bob {}', 'message bob "hi"', 'close alice 1000 bye', 'message bob "new"', 'open carol {}'],
    'every handler saw each event once; the sync as of 2 did not reopen alice, who left at 4')
  t.same(backend.users().sort(), ['bob', 'carol'], 'alice left, bob stayed, carol came')
  t.equal(backend.stats.duplicatesSkipped, 2, 'both replayed events were skipped')
  t.equal(await ackFor(second, 3), 6, 'the skipped and the new events are acked on the new link')
  t.equal(backend.stats.badFrames, 0, 'no frame was bad')
})

t.test('a user who left during a blip is closed once the replay has gone by', async (t) => {
  const { backend, url, calls } = await startBackend(t)
  const first = await fakeGateway(url, { token: BACKEND_TOKEN })
  first.send([ackedHello('gw-1'), { event: 'sync', users: [], seq: 0 }, open('alice', 1), open('bob', 2)])
  t.equal(await ackFor(first, 2), 2, 'the first link acks both opens')
  first.send(message('bob', 'hi', 3))
  await call(calls, 'message bob')
  const dropped = once(backend, 'linkClosed')
  first.ws.terminate()
  await dropped

  // bob's close (5) happened while the link was down: it is new, not a replay
  const second = await fakeGateway(url, { token: BACKEND_TOKEN })
  second.send([ackedHello('gw-1'), { event: 'sync', users: [entry('alice'), entry('bob')], seq: 2 }, message('bob', 'hi', 3), message('alice', 'x', 4), close('bob', 5)])
  t.equal(await call(calls, 'message alice'), 'message alice "x"', 'alice\'s message during the blip is handled')
  t.equal(await call(calls, 'close bob'), 'close bob 1000 bye', 'bob\'s close during the blip is handled')
  t.same(backend.users(), ['alice'], 'only alice is left')
  t.equal(backend.stats.duplicatesSkipped, 1, 'the one replayed message was skipped')
  t.notOk(calls.all.some((c) => c.includes('absent from gateway sync')), 'nobody was closed by the sync')
})

t.test('a restarted backend rebuilds from sync plus the replay', async (t) => {
  const { backend: before, url: firstUrl, calls: beforeCalls } = await startBackend(t)
  const first = await fakeGateway(firstUrl, { token: BACKEND_TOKEN })
  first.send([ackedHello('gw-1'), { event: 'sync', users: [], seq: 0 }, open('alice', 1), open('bob', 2), message('bob', 'hi', 3)])
  await call(beforeCalls, 'message bob')
  await before.stop()

  const { backend, url, calls } = await startBackend(t)
  const second = await fakeGateway(url, { token: BACKEND_TOKEN })
  second.send([ackedHello('gw-1'), { event: 'sync', users: [entry('alice'), entry('bob')], seq: 2 }, message('bob', 'hi', 3), close('alice', 4), message('bob', 'new', 5)])
  t.equal(await call(calls, 'message bob "new"'), 'message bob "new"', 'the new message is handled')
  t.same(calls.all, ['open alice {}', 'open bob {}', 'message bob "hi"', 'close alice 1000 bye', 'message bob "new"'],
    'a new process handles the replay: the one duplicate is the event it never acked')
  t.equal(backend.stats.duplicatesSkipped, 0, 'a new process skips nothing: it acked nothing')
  t.same(backend.users(), ['bob'], 'only bob is left')
  t.equal(await ackFor(second, 3), 5, 'the new link acks everything up to 5')
})

t.test('a gateway restarted under the same node id starts a new sequence with a new session', async (t) => {
  const { backend, url, calls, logger } = await startBackend(t)
  const first = await fakeGateway(url, { token: BACKEND_TOKEN })
  first.send([ackedHello('gw-1'), { event: 'sync', users: [], seq: 0 }, open('alice', 1), message('alice', 'old', 2)])
  t.equal(await ackFor(first, 2), 2, 'the first session acks up to 2')
  const dropped = once(backend, 'linkClosed')
  first.ws.terminate()
  await dropped

  const second = await fakeGateway(url, { token: BACKEND_TOKEN })
  second.send([ackedHello('gw-1', 'session-2'), { event: 'sync', users: [], seq: 0 }, open('bob', 1), message('bob', 'new', 2)])
  t.equal(await call(calls, 'close alice'), 'close alice 1006 absent from gateway sync', 'the new session\'s sync closes alice')
  t.equal(await call(calls, 'open bob'), 'open bob {}', 'seq 1 of the new process is not mistaken for a replay')
  t.equal(await call(calls, 'message bob'), 'message bob "new"', 'the new session\'s message is handled')
  await logger.lines.next((l) => l.includes('new gateway session'))
  t.equal(backend.stats.duplicatesSkipped, 0, 'nothing of the new session is taken for a replay')
})

t.test('bad input on a link with acks is counted and skipped; the link stays up', async (t) => {
  const { backend, url, calls } = await startBackend(t)
  const gateway = await fakeGateway(url, { token: BACKEND_TOKEN })
  gateway.send([ackedHello('gw-1'), { event: 'sync', users: [] }])
  gateway.send({ event: 'sync', users: [], seq: 0 })
  gateway.send({ event: 'open', user: 'mallory', claims, params: {} })
  gateway.send([open('alice', 1), message('alice', 'one', 2)])
  gateway.send(message('alice', 'again', 2))
  gateway.send(message('alice', 'back', 1))
  gateway.send('{"event": "message", ')
  gateway.send({ event: 'message', user: 'alice', params: {}, data: 'x', seq: -3 })
  gateway.ws.send(Buffer.from('binary'))
  gateway.send(message('alice', 'three', 3))
  t.equal(await call(calls, 'message alice "three"'), 'message alice "three"', 'the good message after the bad ones is handled')
  t.same(calls.all, ['open alice {}', 'message alice "one"', 'message alice "three"'], 'only the good events ran')
  t.equal(backend.stats.badFrames, 7, 'sync and open without seq, two seqs going backwards, bad JSON, negative seq, binary')
  t.equal(backend.stats.duplicatesSkipped, 0, 'going backwards on one link is not a replay')
  t.equal(await ackFor(gateway, 1), 3, 'and the link still acks')
})

t.test('without acks in hello, seq is ignored and nothing is acked', async (t) => {
  const { backend, url, calls } = await startBackend(t)
  const gateway = await fakeGateway(url, { token: BACKEND_TOKEN })
  gateway.send([hello('gw-1'), { event: 'sync', users: [] }, open('alice', 5), message('alice', 'a', 5), message('alice', 'b', 1)])
  t.equal(await call(calls, 'message alice "b"'), 'message alice "b"', 'a seq that would go backwards means nothing here')
  t.equal(backend.stats.badFrames, 0, 'seqs on a link without acks are not bad frames')
  // stop() sends whatever acks are due before closing, so an empty list here means none ever were
  await backend.stop()
  await gateway.closed
  t.same(gateway.actions.all, [], 'no ack')
})
