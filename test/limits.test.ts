/** Finite limits: payload (1009), rate (1008), connections (503), slow consumers (1013), heartbeats (1006), expiry (4401). */
import t from 'tap'
import { once } from 'node:events'
import { gatewayWithBackends } from './helpers/setup.js'
import { connect, refusal, type TestClient } from './helpers/client.js'
import { AUDIENCE, ISSUER, SECRET, tokenFor } from './helpers/tokens.js'

/** A lobby under the gateway's `limits`, and a game endpoint with its own `gameLimits` (and `extra` settings). */
async function limited (t: { teardown (fn: () => unknown): void }, limits: Record<string, unknown>, gameLimits?: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const { gateway, backends } = await gatewayWithBackends(t, [
    { name: 'lobby', path: '/lobby' },
    { name: 'game', path: '/game', ...(gameLimits ? { limits: gameLimits } : {}), ...extra }
  ], { limits })
  return { backend: backends.lobby, game: backends.game, gateway }
}

t.test('a frame over maxPayloadBytes closes with 1009; an endpoint may set a smaller limit', async (t) => {
  const { backend, game, gateway } = await limited(t, { maxPayloadBytes: 1024 }, { maxPayloadBytes: 100 })
  const lobbyClient = await connect(gateway.url('/lobby'), { token: tokenFor('big') })
  lobbyClient.ws.send('x'.repeat(1024))
  t.equal((await backend.next('message', 'big')).data, 'x'.repeat(1024), 'exactly the limit passes')
  lobbyClient.ws.send('x'.repeat(1025))
  t.equal((await lobbyClient.closed).code, 1009, 'one byte over maxPayloadBytes closes with 1009')
  const close = await backend.next('close', 'big')
  t.equal(close.code, 1009, 'the backend hears the close with 1009')
  t.equal(backend.events.all.filter((e) => e.event === 'message').length, 1, 'the oversized frame was not relayed')

  const gameClient = await connect(gateway.url('/game'), { token: tokenFor('small') })
  gameClient.ws.send('y'.repeat(101))
  t.same(await gameClient.closed, { code: 1009, reason: 'message too big' }, 'the endpoint\'s smaller limit closes with 1009 and says why')
  t.equal((await game.next('close', 'small')).code, 1009, 'the game backend hears the close with 1009')
})

t.test('past the token bucket the client is closed with 1008', async (t) => {
  const { backend, gateway } = await limited(t, { messagesPerSecond: 0.001, burst: 3 })
  const client = await connect(gateway.url('/lobby'), { token: tokenFor('spammer') })
  for (let i = 0; i < 10; i++) client.ws.send(String(i))
  t.same(await client.closed, { code: 1008, reason: 'rate limit exceeded' }, 'the client is closed with 1008 and told why')
  const close = await backend.next('close', 'spammer')
  t.equal(close.code, 1008, 'the backend hears the close with 1008')
  const relayed = backend.events.all.filter((e) => e.event === 'message').map((e) => e.data)
  t.same(relayed, [0, 1, 2], 'the burst got through, nothing after it')
})

t.test('maxConnections: past it handshakes get 503; per endpoint too', async (t) => {
  const { backend, game, gateway } = await limited(t, { maxConnections: 3 }, { maxConnections: 1 })
  await connect(gateway.url('/game'), { token: tokenFor('g1') })
  const gameFull = await refusal(gateway.url('/game'), { token: tokenFor('g2') })
  t.equal(gameFull.status, 503, 'the game endpoint holds one')
  t.equal(JSON.parse(gameFull.body).code, 'GW_ERR_AT_CAPACITY', 'the refusal names GW_ERR_AT_CAPACITY')
  const a = await connect(gateway.url('/lobby'), { token: tokenFor('a') })
  await connect(gateway.url('/lobby'), { token: tokenFor('b') })
  t.equal((await refusal(gateway.url('/lobby'), { token: tokenFor('c') })).status, 503, 'the gateway holds three')
  a.ws.close()
  await backend.next('close', 'a')
  await connect(gateway.url('/lobby'), { token: tokenFor('c') })
  t.equal((await backend.next('open', 'c')).user, 'c', 'a freed slot is usable')
  await game.next('open', 'g1')
  t.equal(await gateway.metric('gatehouse_handshake_failures_total', { reason: 'capacity' }), 2, 'both refusals are counted as capacity')
})

t.test('a client that stops reading is closed with 1013 once it lags maxBufferedBytes', async (t) => {
  const { backend, gateway } = await limited(t, { maxBufferedBytes: 65536 })
  const slow = await connect(gateway.url('/lobby'), { token: tokenFor('slow') })
  const fast = await connect(gateway.url('/lobby'), { token: tokenFor('fast') })
  await backend.next('open', 'slow')
  await backend.next('open', 'fast')
  slow.ws.pause()
  const chunk = 'z'.repeat(32 * 1024)
  // far more than loopback socket buffers hold, so the gateway's own buffer must grow (two frames: each under backend.maxFrameBytes)
  for (let i = 0; i < 2; i++) backend.send(Array.from({ length: 400 }, () => ({ action: 'send', user: 'slow', data: chunk })))
  const close = await backend.next('close', 'slow')
  t.same([close.code, close.reason], [1013, 'client too slow to read, try again later'], 'the slow client is closed with 1013 and told why')
  t.ok(await gateway.metric('gatehouse_dropped_actions_total', { reason: 'slow_consumer' }) > 0, 'what could not be delivered is counted')
  backend.send({ action: 'send', user: 'fast', data: 'unaffected' })
  t.equal(await fast.next(), 'unaffected', 'other clients are unaffected')
  slow.ws.terminate()
})

t.test('heartbeat: a client that does not answer pings is dropped and reported with 1006', async (t) => {
  const { backend, gateway } = await limited(t, { heartbeatIntervalMs: 60 })
  const mute = await connect(gateway.url('/lobby'), { token: tokenFor('mute'), ws: { autoPong: false } })
  const live = await connect(gateway.url('/lobby'), { token: tokenFor('live') })
  const close = await backend.next('close', 'mute')
  t.same([close.code, close.reason], [1006, 'heartbeat timeout'], 'the backend hears the close with 1006 and why')
  t.equal((await mute.closed).code, 1006, 'the mute client sees 1006')
  const pings = async (): Promise<string> => {
    for (let i = 0; i < 3; i++) await once(live.ws, 'ping')
    return 'three pings'
  }
  const survived = await Promise.race([pings(), live.closed.then((c) => `closed with ${c.code}`)])
  t.equal(survived, 'three pings', 'a client that answers survives heartbeats')
  t.notOk(backend.events.all.some((e) => e.event === 'close' && e.user === 'live'), 'the backend hears no close of the live client')
})

/** Resolves with when the socket closed (its close event, not when the test got round to looking) and how. */
function closeOf (client: TestClient): Promise<{ at: number, code: number, reason: string }> {
  return new Promise((resolve) => client.ws.once('close', (code: number, reason: Buffer) => resolve({ at: Date.now(), code, reason: reason.toString() })))
}

t.test('enforceExpiry: the socket closes with 4401 when the token expires', async (t) => {
  const { game, gateway } = await limited(t, {}, undefined, { enforceExpiry: true })
  // whole seconds from the next second boundary: at least 2 s for the handshake, whenever in a second the test starts
  const exp = Math.ceil(Date.now() / 1000) + 2
  const client = await connect(gateway.url('/game'), { token: tokenFor('cinderella', { exp }) })
  const closed = closeOf(client)
  await game.next('open', 'cinderella')
  const close = await closed
  t.same([close.code, close.reason], [4401, 'token expired'], 'the client gets 4401 and why')
  t.equal((await game.next('close', 'cinderella')).code, 4401, 'the backend hears the close with 4401')
  t.ok(close.at >= exp * 1000, `not before the expiry (closed ${close.at - exp * 1000} ms after it)`)
})

t.test('enforceExpiry honours the clock tolerance', async (t) => {
  const clockToleranceSec = 5
  const { gateway, backends: { game: backend } } = await gatewayWithBackends(t, [{ name: 'game', path: '/game', enforceExpiry: true }], {
    auth: { secret: SECRET, issuer: ISSUER, audience: AUDIENCE, clockToleranceSec }
  })
  // already expired by 1-2 s, but inside the tolerance for 3-4 s more: a gateway that ignored the tolerance would close at once
  const exp = Math.floor(Date.now() / 1000) - 1
  const client = await connect(gateway.url('/game'), { token: tokenFor('late', { exp }) })
  const closed = closeOf(client)
  await backend.next('open', 'late')
  const close = await closed
  t.equal(close.code, 4401, 'closed with 4401 once exp plus the tolerance is past')
  t.ok(close.at >= (exp + clockToleranceSec) * 1000, `not before exp + clockToleranceSec (closed ${close.at - (exp + clockToleranceSec) * 1000} ms after it)`)
})
