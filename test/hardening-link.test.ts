/** Issue 10, the backend link: per-client queue shares, closes at shutdown, redial backoff, dial warnings, backend frame bounds. */
import t from 'tap'
import { backendFor, startBackend, type TestBackend } from './helpers/backend.js'
import { startGateway, testConfig, type TestGateway } from './helpers/gateway.js'
import { connect } from './helpers/client.js'
import { AUDIENCE, ISSUER, SECRET, tokenFor } from './helpers/tokens.js'
import { runCli } from './helpers/cli.js'
import { ConfigError, parseConfig } from '../src/config/load.js'
import { GatehouseBackend } from '../src/sdk/index.js'
import { BACKEND_TOKEN, call, captureLogger, fakeGateway, hello, recorder } from './sdk-fixtures.js'

function endpoint (backend: TestBackend, extra: Record<string, unknown> = {}) {
  return { name: 'game', path: '/game/:matchId', backend: { url: backend.url, minReconnectDelayMs: 20, maxReconnectDelayMs: 100, ...extra } }
}

/** Polls a metric until `ok` holds (the gateway handles a client's frame some time after the client sent it). */
async function metricUntil (gateway: TestGateway, name: string, labels: Record<string, string>, ok: (v: number) => boolean): Promise<number> {
  const deadline = Date.now() + 10000
  for (;;) {
    const value = await gateway.metric(name, labels)
    if (ok(value)) return value
    if (Date.now() > deadline) throw new Error(`${name} stayed at ${value}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

t.test('item 7: a client flooding the outage queue is closed alone; bytes count as encoded', async (t) => {
  const first = await backendFor(t)
  // the whole queue holds about ten of the flooder's events; a client's share, two
  const queue = { graceMs: 60000, maxBytes: 4 << 20, maxClientBytes: 1 << 20 }
  const gateway = await startGateway(t, testConfig([endpoint(first)], { queue }))
  await first.next('hello')
  const flooder = await connect(gateway.url('/game/m'), { token: tokenFor('flooder') })
  const player = await connect(gateway.url('/game/m'), { token: tokenFor('player') })
  await first.next('open', 'flooder')
  await first.next('open', 'player')
  await first.close()
  await gateway.logged(/backend link down/)

  // 65,000 control characters: 65 KB on the wire, 390 KB once JSON-escaped (\u0001 is 6 bytes)
  const frame = '\u0001'.repeat(65000)
  flooder.ws.send(frame)
  const queued = await metricUntil(gateway, 'gatehouse_queue_bytes', { endpoint: 'game' }, (v) => v > 0)
  t.ok(queued > 6 * 65000, `one frame counts as its escaped size in the queue (${queued} bytes)`)
  // well inside the rate limit (burst 100), and enough to fill the whole queue
  for (let i = 0; i < 15; i++) flooder.ws.send(frame)
  t.same(await flooder.closed, { code: 1008, reason: 'too much queued for the backend, slow down' }, 'the flooder is closed with 1008')
  t.ok(await gateway.metric('gatehouse_dropped_events_total', { reason: 'client_share' }) >= 1, 'its refused event is counted')
  t.equal(await gateway.metric('gatehouse_dropped_events_total', { reason: 'queue_full' }), 0, 'the queue never filled')
  t.equal(player.ws.readyState, player.ws.OPEN, 'the other player is still connected')
  player.ws.send('still here')

  const second = await backendFor(t, { port: first.port })
  await second.next('hello')
  t.equal(((await second.next('sync')).users as unknown[]).length, 2, 'nothing was given up: the sync has both users')
  t.equal((await second.next('close', 'flooder')).code, 1008, 'the backend is told the flooder was closed, and why')
  t.equal((await second.next('message', 'player')).data, 'still here', "the other player's message was queued")
  second.send({ action: 'send', user: 'player', data: 'welcome back' })
  t.equal(await player.next(), 'welcome back', 'and the player is served')
  t.equal(player.ws.readyState, player.ws.OPEN, 'the player is still connected')
})

t.test('item 7: queue.maxClientBytes defaults to 1 MiB and is checked like any field', async (t) => {
  const minimal = { auth: { secret: SECRET }, endpoints: [{ name: 'a', path: '/a', backend: { url: 'ws://127.0.0.1:1' } }] }
  t.equal(parseConfig(minimal).queue.maxClientBytes, 1048576, 'queue.maxClientBytes defaults to 1 MiB')
  const refused = t.throws(() => parseConfig({ ...minimal, queue: { maxClientBytes: 10 } }), 'a queue.maxClientBytes under 1024 is a config error') as ConfigError
  t.same(refused.problems, ['queue.maxClientBytes: must be >= 1024'], 'the problem names the field and its minimum')
})

t.test('item 8: SIGTERM with more clients than queue.maxEvents: every close reaches the backend', async (t) => {
  const backend = await backendFor(t)
  const config = testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }], { log: { level: 'info' }, queue: { maxEvents: 20 } })
  const run = runCli({ ...config, auth: { secret: '${JWT_SECRET}', issuer: ISSUER, audience: AUDIENCE } }, { JWT_SECRET: SECRET })
  t.teardown(() => { run.child.kill('SIGKILL') })
  const listening = await run.lines.next((l) => /Server listening at/.test(String(l.msg)), 15000, 'the gateway to listen')
  const url = String(listening.msg).replace(/^.*Server listening at http/, 'ws')
  await backend.next('hello')
  const clients = []
  for (let i = 0; i < 30; i++) {
    clients.push(await connect(`${url}/lobby`, { token: tokenFor(`u${i}`) }))
    await backend.next('open', `u${i}`)
  }
  run.child.kill('SIGTERM')
  for (const [i, client] of clients.entries()) t.equal((await client.closed).code, 1001, `u${i} gets 1001`)
  t.equal(await run.exited, 0, 'exit 0')
  const closes = backend.events.all.filter((e) => e.event === 'close')
  t.equal(closes.length, 30, 'the backend received all 30 closes')
  t.ok(closes.every((e) => e.code === 1001), 'each with 1001')
  t.notOk(run.lines.all.some((l) => /backend unavailable/.test(String(l.msg))), 'the shutdown did not give up on the backend')
})

t.test('item 9: a link that was up redials after minReconnectDelayMs, however often it is cut', async (t) => {
  const first = await backendFor(t)
  // a cap far above the first delay: a backoff that kept growing across cuts would show at once
  const gateway = await startGateway(t, testConfig([endpoint(first, { minReconnectDelayMs: 20, maxReconnectDelayMs: 60000 })]))
  await first.next('hello')
  for (let cut = 1; cut <= 6; cut++) {
    first.kill()
    const redial = await gateway.logged(/backend link redial scheduled/)
    t.equal(redial.attempt, 1, `cut ${cut}: the first redial after an up link`)
    t.ok(Number(redial.delayMs) <= 20, `cut ${cut}: waits at most minReconnectDelayMs (${String(redial.delayMs)} ms)`)
    await first.next('hello')
  }

  // while dials fail, the delay doubles from there
  await first.close()
  for (let attempt = 1; attempt <= 4; attempt++) {
    const redial = await gateway.logged(/backend link redial scheduled/)
    t.equal(redial.attempt, attempt, 'consecutive failed dials back off')
    const ceiling = 20 * 2 ** (attempt - 1)
    t.ok(Number(redial.delayMs) >= ceiling / 2 - 1 && Number(redial.delayMs) <= ceiling, `attempt ${attempt}: ${String(redial.delayMs)} ms in [${ceiling / 2}, ${ceiling}]`)
  }
  const second = await backendFor(t, { port: first.port })
  await second.next('hello')
  // the redials scheduled before the backend came back, not yet looked at
  const pending = gateway.logs.filter((l) => l.includes('backend link redial scheduled')).length - 10
  for (let i = 0; i < pending; i++) await gateway.logged(/backend link redial scheduled/)
  second.kill()
  const after = await gateway.logged(/backend link redial scheduled/)
  t.equal(after.attempt, 1, 'once the link is up again, the count starts over')
})

t.test('item 10: a backend that refuses the link, or is not there, is warned about, rate-limited, without secrets', async (t) => {
  const guarded = await backendFor(t, { token: 'the-right-token' })
  const probe = await startBackend()
  const deadPort = probe.port
  await probe.close()
  const gateway = await startGateway(t, testConfig([
    { name: 'refused', path: '/refused', backend: { url: `ws://someone:pa55word@127.0.0.1:${guarded.port}/link?key=s3cret`, minReconnectDelayMs: 20, maxReconnectDelayMs: 40 } },
    { name: 'absent', path: '/absent', backend: { url: `ws://127.0.0.1:${deadPort}/link?key=s3cret`, minReconnectDelayMs: 20, maxReconnectDelayMs: 40 } }
  ], { log: { level: 'debug' } }))

  const refused = await gateway.logged(/backend link cannot connect/)
  const absent = await gateway.logged(/backend link cannot connect/)
  const byEndpoint = Object.fromEntries([refused, absent].map((l) => [l.endpoint, l]))
  t.equal(byEndpoint.refused.level, 40, 'a warning')
  t.equal(byEndpoint.refused.backend, `ws://127.0.0.1:${guarded.port}/link`, 'the URL without credentials or query')
  t.match(String(byEndpoint.refused.reason), /401/, 'the reason: the backend refused the link')
  t.equal(byEndpoint.absent.level, 40, 'an absent backend: a warning')
  t.equal(byEndpoint.absent.backend, `ws://127.0.0.1:${deadPort}/link`, 'an absent backend: the URL without its query')
  t.match(String(byEndpoint.absent.reason), /ECONNREFUSED/, 'the reason: nothing listens there')

  // many more failed dials of each, and still one warning each
  for (let i = 0; i < 5; i++) {
    await gateway.logged(/backend dial failed/)
    await gateway.logged(/backend dial failed/)
  }
  const warnings = gateway.logs.filter((l) => l.includes('backend link cannot connect'))
  t.equal(warnings.length, 2, 'one warning per endpoint, not one per dial')
  const all = gateway.logs.join('\n')
  t.notOk(all.includes('s3cret'), 'no query string in any log line')
  t.notOk(all.includes('pa55word'), 'no URL credentials in any log line')
})

t.test('item 13: backend frames are bounded by backend.maxFrameBytes (16 MiB by default), and a bad frame makes one short log line', async (t) => {
  const minimal = { auth: { secret: SECRET }, endpoints: [{ name: 'a', path: '/a', backend: { url: 'ws://127.0.0.1:1' } }] }
  t.equal(parseConfig(minimal).endpoints[0].backend.maxFrameBytes, 16 << 20, 'default 16 MiB')

  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([endpoint(backend, { maxFrameBytes: 65536 })]))
  await backend.next('hello')
  const alice = await connect(gateway.url('/game/m'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')

  backend.send({ action: 'send', users: Array.from({ length: 20000 }, (_, i) => `user-${i}`), data: 1 })
  const refused = await gateway.logged(/backend broke the WebSocket protocol/)
  t.match(String(refused.msg), /backend\.maxFrameBytes 65536/, 'the log names the limit')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { reason: 'frame_too_big' }), 1, 'counted')
  await backend.next('hello')
  t.equal(alice.ws.readyState, alice.ws.OPEN, 'the link is redialled; clients stay')

  // one action with 10,000 invalid users, then a batch of 2,000 invalid actions
  backend.send({ action: 'send', users: Array.from({ length: 10000 }, (_, i) => i), data: 1 })
  const one = await gateway.logged(/backend sent a bad frame/)
  backend.send(Array.from({ length: 2000 }, () => ({ action: 'explode' })))
  const many = await gateway.logged(/backend sent a bad frame/)
  const lines = gateway.logs.filter((l) => l.includes('backend sent a bad frame'))
  t.equal(lines.length, 2, 'one log line per bad frame')
  t.ok(lines.every((l) => l.length < 5000), `each line is short (${lines.map((l) => l.length).join(', ')} characters)`)
  t.match((one.problems as string[])[0], /^action\.users\[0\]: must be string/, 'the first problem is named')
  t.equal((many.problems as string[]).length, 10, 'the first ten problems are listed')
  t.equal(many.more, 1990, 'and the rest counted')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { reason: 'invalid_message' }), 2001, 'every bad action is counted')
  backend.send({ action: 'send', user: 'alice', data: 'still up' })
  t.equal(await alice.next(), 'still up', 'the link stays up after bad frames')
})

t.test('item 13: the SDK cuts a large batch of actions into frames well under backend.maxFrameBytes', async (t) => {
  const { handlers, calls } = recorder()
  const sdk = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, handlers)
  const { url } = await sdk.listen()
  t.teardown(() => sdk.stop())
  const gateway = await fakeGateway(url, { token: BACKEND_TOKEN })
  gateway.send([hello('node-a'), { event: 'sync', users: [] }, { event: 'open', user: 'alice', claims: {}, params: {} }])
  await call(calls, 'open alice')
  const sizes: number[] = []
  gateway.ws.on('message', (data: Buffer) => sizes.push(data.length))
  const chunk = 'x'.repeat(100000)
  // one tick: 40 actions of 100 KB, one 4 MB frame if batched whole
  for (let i = 0; i < 40; i++) sdk.send('alice', `${i}:${chunk}`)
  for (let i = 0; i < 40; i++) t.equal(String((await gateway.actions.next((a) => a.action === 'send')).data).split(':')[0], String(i), `action ${i} arrives, in order`)
  t.ok(sizes.length > 1, `cut into ${sizes.length} frames`)
  t.ok(sizes.every((n) => n <= 3 << 20), `each at most 3 MiB (${sizes.join(', ')} bytes)`)
})
