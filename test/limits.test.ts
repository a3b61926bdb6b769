/** Finite limits: payload (1009), rate (1008), connections (503), slow consumers (1013), heartbeats (1006), expiry (4401). */
import t from 'tap'
import { once } from 'node:events'
import { backendFor } from './helpers/backend.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { connect, refusal, type TestClient } from './helpers/client.js'
import { AUDIENCE, ISSUER, SECRET, tokenFor } from './helpers/tokens.js'

async function setup (t: { teardown (fn: () => unknown): void }, limits: Record<string, unknown>, gameLimits?: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const backend = await backendFor(t)
  const game = await backendFor(t)
  const gateway = await startGateway(t, testConfig([
    { name: 'lobby', path: '/lobby', backend: backend.url },
    { name: 'game', path: '/game', backend: game.url, ...(gameLimits ? { limits: gameLimits } : {}), ...extra }
  ], { limits }))
  await backend.next('hello')
  await game.next('hello')
  return { backend, game, gateway }
}

t.test('a frame over maxPayloadBytes closes with 1009; an endpoint may set a smaller limit', async (t) => {
  const { backend, game, gateway } = await setup(t, { maxPayloadBytes: 1024 }, { maxPayloadBytes: 100 })
  const lobbyClient = await connect(gateway.url('/lobby'), { token: tokenFor('big') })
  lobbyClient.ws.send('x'.repeat(1024))
  t.equal((await backend.next('message', 'big')).data, 'x'.repeat(1024), 'exactly the limit passes')
  lobbyClient.ws.send('x'.repeat(1025))
  t.equal((await lobbyClient.closed).code, 1009)
  const close = await backend.next('close', 'big')
  t.equal(close.code, 1009)
  t.equal(backend.events.all.filter((e) => e.event === 'message').length, 1, 'the oversized frame was not relayed')

  const gameClient = await connect(gateway.url('/game'), { token: tokenFor('small') })
  gameClient.ws.send('y'.repeat(101))
  t.same(await gameClient.closed, { code: 1009, reason: 'message too big' })
  t.equal((await game.next('close', 'small')).code, 1009)
})

t.test('past the token bucket the client is closed with 1008', async (t) => {
  const { backend, gateway } = await setup(t, { messagesPerSecond: 0.001, burst: 3 })
  const client = await connect(gateway.url('/lobby'), { token: tokenFor('spammer') })
  for (let i = 0; i < 10; i++) client.ws.send(String(i))
  t.same(await client.closed, { code: 1008, reason: 'rate limit exceeded' })
  const close = await backend.next('close', 'spammer')
  t.equal(close.code, 1008)
  const relayed = backend.events.all.filter((e) => e.event === 'message').map((e) => e.data)
  t.same(relayed, [0, 1, 2], 'the burst got through, nothing after it')
})

t.test('maxConnections: past it handshakes get 503; per endpoint too', async (t) => {
  const { backend, game, gateway } = await setup(t, { maxConnections: 3 }, { maxConnections: 1 })
  await connect(gateway.url('/game'), { token: tokenFor('g1') })
  const gameFull = await refusal(gateway.url('/game'), { token: tokenFor('g2') })
  t.equal(gameFull.status, 503, 'the game endpoint holds one')
  t.equal(JSON.parse(gameFull.body).code, 'GW_ERR_AT_CAPACITY')
  const a = await connect(gateway.url('/lobby'), { token: tokenFor('a') })
  await connect(gateway.url('/lobby'), { token: tokenFor('b') })
  t.equal((await refusal(gateway.url('/lobby'), { token: tokenFor('c') })).status, 503, 'the gateway holds three')
  a.ws.close()
  await backend.next('close', 'a')
  await connect(gateway.url('/lobby'), { token: tokenFor('c') })
  t.equal((await backend.next('open', 'c')).user, 'c', 'a freed slot is usable')
  await game.next('open', 'g1')
  t.equal(await gateway.metric('gatehouse_handshake_failures_total', { reason: 'capacity' }), 2)
})

t.test('a client that stops reading is closed with 1013 once it lags maxBufferedBytes', async (t) => {
  const { backend, gateway } = await setup(t, { maxBufferedBytes: 65536 })
  const slow = await connect(gateway.url('/lobby'), { token: tokenFor('slow') })
  const fast = await connect(gateway.url('/lobby'), { token: tokenFor('fast') })
  await backend.next('open', 'slow')
  await backend.next('open', 'fast')
  slow.ws.pause()
  const chunk = 'z'.repeat(32 * 1024)
  // far more than loopback socket buffers hold, so the gateway's own buffer must grow (two frames: each under backend.maxFrameBytes)
  for (let i = 0; i < 2; i++) backend.send(Array.from({ length: 400 }, () => ({ action: 'send', user: 'slow', data: chunk })))
  const close = await backend.next('close', 'slow')
  t.same([close.code, close.reason], [1013, 'client too slow to read, try again later'])
  t.ok(await gateway.metric('gatehouse_dropped_actions_total', { reason: 'slow_consumer' }) > 0, 'what could not be delivered is counted')
  backend.send({ action: 'send', user: 'fast', data: 'unaffected' })
  t.equal(await fast.next(), 'unaffected', 'other clients are unaffected')
  slow.ws.terminate()
})

t.test('heartbeat: a client that does not answer pings is dropped and reported with 1006', async (t) => {
  const { backend, gateway } = await setup(t, { heartbeatIntervalMs: 60 })
  const mute = await connect(gateway.url('/lobby'), { token: tokenFor('mute'), ws: { autoPong: false } })
  const live = await connect(gateway.url('/lobby'), { token: tokenFor('live') })
  const close = await backend.next('close', 'mute')
  t.same([close.code, close.reason], [1006, 'heartbeat timeout'])
  t.equal((await mute.closed).code, 1006)
  const pings = async (): Promise<string> => {
    for (let i = 0; i < 3; i++) await once(live.ws, 'ping')
    return 'three pings'
  }
  const survived = await Promise.race([pings(), live.closed.then((c) => `closed with ${c.code}`)])
  t.equal(survived, 'three pings', 'a client that answers survives heartbeats')
  t.notOk(backend.events.all.some((e) => e.event === 'close' && e.user === 'live'))
})

/** Resolves with when the socket closed (its close event, not when the test got round to looking) and how. */
function closeOf (client: TestClient): Promise<{ at: number, code: number, reason: string }> {
  return new Promise((resolve) => client.ws.once('close', (code: number, reason: Buffer) => resolve({ at: Date.now(), code, reason: reason.toString() })))
}

t.test('enforceExpiry: the socket closes with 4401 when the token expires', async (t) => {
  const { game, gateway } = await setup(t, {}, undefined, { enforceExpiry: true })
  // whole seconds from the next second boundary: at least 2 s for the handshake, whenever in a second the test starts
  const exp = Math.ceil(Date.now() / 1000) + 2
  const client = await connect(gateway.url('/game'), { token: tokenFor('cinderella', { exp }) })
  const closed = closeOf(client)
  await game.next('open', 'cinderella')
  const close = await closed
  t.same([close.code, close.reason], [4401, 'token expired'])
  t.equal((await game.next('close', 'cinderella')).code, 4401)
  t.ok(close.at >= exp * 1000, `not before the expiry (closed ${close.at - exp * 1000} ms after it)`)
})

t.test('enforceExpiry honours the clock tolerance', async (t) => {
  const backend = await backendFor(t)
  const clockToleranceSec = 5
  const gateway = await startGateway(t, testConfig([{ name: 'game', path: '/game', backend: backend.url, enforceExpiry: true }], {
    auth: { secret: SECRET, issuer: ISSUER, audience: AUDIENCE, clockToleranceSec }
  }))
  // already expired by 1-2 s, but inside the tolerance for 3-4 s more: a gateway that ignored the tolerance would close at once
  const exp = Math.floor(Date.now() / 1000) - 1
  const client = await connect(gateway.url('/game'), { token: tokenFor('late', { exp }) })
  const closed = closeOf(client)
  await backend.next('open', 'late')
  const close = await closed
  t.equal(close.code, 4401)
  t.ok(close.at >= (exp + clockToleranceSec) * 1000, `not before exp + clockToleranceSec (closed ${close.at - (exp + clockToleranceSec) * 1000} ms after it)`)
})
