/** When the backend is away (PROTOCOL.md §5): queue, hello/sync/replay, grace, 1013/503, dead peers. */
import t from 'tap'
import { once } from 'node:events'
import { backendFor, type TestBackend } from './helpers/backend.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { connect, refusal } from './helpers/client.js'
import { freePort, onFreePort } from './helpers/ports.js'
import { tokenFor } from './helpers/tokens.js'

/** The payload of a token as its issuer wrote it: what `claims` must carry. */
function claimsOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString())
}

/** A backend on a port kept for this process, so that one started again on it finds it free. */
async function restartable (t: Parameters<typeof backendFor>[0]): Promise<TestBackend> {
  return await onFreePort(async (port) => await backendFor(t, { port }))
}

function endpoint (backend: TestBackend, extra: Record<string, unknown> = {}) {
  return { name: 'game', path: '/game/:matchId', backend: { url: backend.url, minReconnectDelayMs: 20, maxReconnectDelayMs: 100, ...extra } }
}

t.test('a backend that dies and comes back gets hello, sync, then the queued events in order', async (t) => {
  const first = await restartable(t)
  const gateway = await startGateway(t, testConfig([endpoint(first)], { queue: { graceMs: 30000 } }))
  await first.next('hello')
  const aliceToken = tokenFor('alice', { rank: 3 })
  const bobToken = tokenFor('bob')
  const alice = await connect(gateway.url('/game/m1'), { token: aliceToken })
  const bob = await connect(gateway.url('/game/m1'), { token: bobToken })
  await first.next('open', 'alice')
  await first.next('open', 'bob')

  await first.close()
  await gateway.logged(/backend link down/)
  t.equal((await gateway.get('/readyz')).status, 503, 'not ready while the link is down')
  for (let i = 0; i < 50; i++) alice.ws.send(JSON.stringify({ n: i }))
  bob.ws.close(1000, 'gone')
  const carol = await connect(gateway.url('/game/m2'), { token: tokenFor('carol') })
  carol.ws.send('hi')

  const second = await backendFor(t, { port: first.port })
  const hello = await second.events.next()
  t.same([hello.event, hello.endpoint, hello.protocol], ['hello', 'game', 1], 'hello first')
  const sync = await second.events.next()
  t.equal(sync.event, 'sync', 'then sync')
  t.strictSame(sync.users, [
    { user: 'alice', claims: claimsOf(aliceToken), params: { matchId: 'm1' } },
    { user: 'bob', claims: claimsOf(bobToken), params: { matchId: 'm1' } }
  ], 'sync lists who was connected when the link dropped, with the claims of their tokens and their params')
  for (let i = 0; i < 50; i++) {
    const event = await second.events.next()
    t.same([event.event, event.user, event.data], ['message', 'alice', { n: i }], `queued message ${i} in order`)
  }
  // then what happened during the outage: ordered per client, interleaved across clients as it happened
  const rest = [await second.events.next(), await second.events.next(), await second.events.next()]
  t.same(rest.filter((e) => e.user === 'bob').map((e) => [e.event, e.code]), [['close', 1000]], 'bob\'s close during the outage follows the queue')
  t.same(rest.filter((e) => e.user === 'carol').map((e) => [e.event, e.data]), [['open', undefined], ['message', 'hi']], 'carol\'s open and message during the outage follow, in order')
  alice.ws.send('after')
  t.equal((await second.next('message', 'alice')).data, 'after', 'alice stayed connected through the outage: her socket still carries traffic')
  t.equal(await gateway.metric('gatehouse_link_reconnects_total'), 1, 'the link came back once')
  t.equal((await gateway.get('/readyz')).status, 200, 'ready again once the link is back')
})

t.test('an outage past graceMs closes clients with 1013 and refuses handshakes with 503 until the link is back', async (t) => {
  const first = await restartable(t)
  const gateway = await startGateway(t, testConfig([endpoint(first)], { queue: { graceMs: 150 } }))
  await first.next('hello')
  const alice = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  await first.next('open', 'alice')
  await first.close()
  alice.ws.send('lost with the outage')
  t.same(await alice.closed, { code: 1013, reason: 'backend unavailable, try again later' }, 'the client is closed with 1013 once graceMs is past')
  const refused = await refusal(gateway.url('/game/m1'), { token: tokenFor('bob') })
  t.equal(refused.status, 503, 'a handshake during the outage is refused with 503')
  t.equal(JSON.parse(refused.body).code, 'GW_ERR_BACKEND_UNAVAILABLE', 'the refusal names GW_ERR_BACKEND_UNAVAILABLE')
  t.equal((await gateway.get('/readyz')).status, 503, 'not ready during the outage')
  t.ok(await gateway.metric('gatehouse_dropped_events_total', { reason: 'backend_unavailable' }) >= 1, 'discarded events are counted')

  const second = await backendFor(t, { port: first.port })
  await second.next('hello')
  t.same((await second.next('sync')).users, [], 'the restarted backend learns that nobody is connected')
  await connect(gateway.url('/game/m1'), { token: tokenFor('bob') })
  t.equal((await second.next('open', 'bob')).user, 'bob', 'handshakes are accepted again')
  t.notOk(second.events.all.some((e) => e.user === 'alice'), 'nothing stale about alice')
})

t.test('clients may connect before the backend is first reached; their events wait for it', async (t) => {
  const port = await freePort()
  const gateway = await startGateway(t, testConfig([{ name: 'game', path: '/game/:matchId', backend: `ws://127.0.0.1:${port}` }]))
  const early = await connect(gateway.url('/game/e'), { token: tokenFor('early') })
  early.ws.send('first')
  t.equal((await gateway.get('/readyz')).status, 503, 'not ready before the backend is first reached')
  const backend = await backendFor(t, { port })
  t.same((await backend.events.next()).event, 'hello', 'the backend first gets hello')
  t.same(await backend.events.next(), { event: 'sync', users: [] }, 'then a sync with no users (the client opened after it)')
  t.same((await backend.events.next()).event, 'open', 'then the early client\'s open')
  t.same((await backend.events.next()).data, 'first', 'then its message, kept while the backend was away')
})

t.test('a full queue closes the endpoint\'s clients with 1013 and counts what was dropped', async (t) => {
  const first = await restartable(t)
  const gateway = await startGateway(t, testConfig([endpoint(first)], { queue: { maxEvents: 5, graceMs: 30000 } }))
  await first.next('hello')
  const alice = await connect(gateway.url('/game/m'), { token: tokenFor('alice') })
  await first.next('open', 'alice')
  await first.close()
  await gateway.logged(/backend link down/)
  for (let i = 0; i < 10; i++) alice.ws.send(String(i))
  t.equal((await alice.closed).code, 1013, 'a full queue closes the client with 1013')
  t.equal(await gateway.metric('gatehouse_dropped_events_total', { reason: 'queue_full' }), 1, 'the overflow is counted once')
  const second = await backendFor(t, { port: first.port })
  await second.next('hello')
  t.same((await second.next('sync')).users, [], 'the backend starts from an empty roster')
})

t.test('the link presents backend.token; a backend that refuses it is retried, never served', async (t) => {
  const backend = await backendFor(t, { token: 'link-secret' })
  const gateway = await startGateway(t, testConfig([
    { name: 'good', path: '/good', backend: { url: backend.url, token: 'link-secret' } },
    { name: 'bad', path: '/bad', backend: { url: backend.url, token: 'wrong-secret', minReconnectDelayMs: 20, maxReconnectDelayMs: 50 } }
  ]))
  const hello = await backend.next('hello')
  t.equal(hello.endpoint, 'good', 'only the endpoint with the right token gets its link up')
  const { request } = await backend.links.next()
  t.equal(request.headers.authorization, 'Bearer link-secret', 'the link presents the endpoint\'s token as a bearer')
  const failure = await gateway.logged(/backend dial failed/)
  t.match(String(failure.err), /401/, 'the refusal is logged with its status')
  await gateway.logged(/backend dial failed/)
  t.notOk(gateway.logs.join('\n').includes('wrong-secret'), 'the backend token is not logged')
  t.same(JSON.parse((await gateway.get('/readyz')).body).links, { good: 'up', bad: 'connecting' }, 'readyz shows each link\'s state')
})

t.test('a backend that stops answering pings is dropped and redialled', async (t) => {
  const backend = await backendFor(t, { autoPong: false })
  const gateway = await startGateway(t, testConfig([endpoint(backend, { pingIntervalMs: 50 })]))
  const { socket: silent } = await backend.links.next()
  const cut = once(silent, 'close')
  await backend.next('hello')
  const [code] = await cut
  t.equal(code, 1006, 'the silent link is cut, without a close handshake it could not answer')
  await gateway.logged(/backend link down/)
  t.equal((await backend.next('hello')).event, 'hello', 'a new link says hello again')
})

t.test('a sync larger than the write high-water mark does not stall the queued events behind it', async (t) => {
  const first = await restartable(t)
  const gateway = await startGateway(t, testConfig([endpoint(first)]))
  await first.next('hello')
  // far more than loopback socket buffers take at once, so the sync really waits in the gateway
  const padding = 'p'.repeat(9000)
  const clients = []
  for (let i = 0; i < 1000; i++) clients.push(await connect(gateway.url('/game/big'), { token: tokenFor(`u${i}`, { padding }) }))
  for (let i = 0; i < 1000; i++) await first.next('open')
  await first.close()
  await gateway.logged(/backend link down/)
  clients[0].ws.send('queued behind a big sync')
  const second = await backendFor(t, { port: first.port })
  const sync = await second.next('sync')
  t.equal((sync.users as unknown[]).length, 1000, 'the sync lists all 1000 clients')
  t.ok(JSON.stringify(sync).length > 8 << 20, 'the sync is over 8 MiB')
  t.equal((await second.next('message', 'u0')).data, 'queued behind a big sync', 'the queued event follows without any new traffic')
})
