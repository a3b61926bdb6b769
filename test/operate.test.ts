/** Operating the gateway: health, readiness, metrics, and a SIGTERM drain of the real process under traffic. */
import t from 'tap'
import { backendFor } from './helpers/backend.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { connect, refusal } from './helpers/client.js'
import { AUDIENCE, ISSUER, tokenFor } from './helpers/tokens.js'
import { runCli } from './helpers/cli.js'
import { freePort } from './helpers/ports.js'

t.test('healthz, readyz and metrics', async (t) => {
  const backend = await backendFor(t)
  // no one listens on it until the test starts a backend there
  const deadPort = await freePort()
  const gateway = await startGateway(t, testConfig([
    { name: 'lobby', path: '/lobby', backend: backend.url },
    { name: 'game', path: '/game', backend: `ws://127.0.0.1:${deadPort}` }
  ]))
  await backend.next('hello')
  t.same(JSON.parse((await gateway.get('/healthz')).body), { status: 'ok' }, 'healthz says ok')
  const ready = await gateway.get('/readyz')
  t.equal(ready.status, 503, 'not ready while any link is down')
  t.same(JSON.parse(ready.body), { status: 'not ready', links: { lobby: 'up', game: 'connecting' }, broker: 'up' }, 'a node alone has no Redis to lose: its broker is always up')

  const client = await connect(gateway.url('/lobby'), { token: tokenFor('m') })
  await backend.next('open', 'm')
  client.ws.send('a')
  await backend.next('message', 'm')
  await refusal(gateway.url('/lobby'))
  const { body } = await gateway.get('/metrics')
  t.match(body, /# TYPE gatehouse_connections gauge/, 'the connections gauge is declared')
  t.match(body, /gatehouse_process_resident_memory_bytes/, 'process metrics too')
  t.equal(await gateway.metric('gatehouse_connections', { endpoint: 'lobby' }), 1, 'the lobby client is counted')
  t.equal(await gateway.metric('gatehouse_messages_in_total', { endpoint: 'lobby' }), 1, 'its message is counted')
  t.equal(await gateway.metric('gatehouse_link_up', { endpoint: 'lobby' }), 1, 'the lobby link is up')
  t.equal(await gateway.metric('gatehouse_link_up', { endpoint: 'game' }), 0, 'the game link is down')
  t.equal(await gateway.metric('gatehouse_handshake_failures_total', { endpoint: 'lobby', reason: 'token_missing' }), 1, 'the refused handshake is counted by reason')

  const revived = await backendFor(t, { port: deadPort })
  await revived.next('hello')
  t.equal((await gateway.get('/readyz')).status, 200, 'ready once every link is up')
})

t.test('SIGTERM during traffic: clients get 1001, their close events reach the backend, exit 0', async (t) => {
  const backend = await backendFor(t)
  const config = testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }], {
    log: { level: 'info' },
    // the streamer sends far faster than a player may: what is tested is the shutdown, not the rate limit (1008)
    limits: { messagesPerSecond: 1e9, burst: 1e9 }
  })
  const run = runCli({ ...config, auth: { secret: '${JWT_SECRET}', issuer: ISSUER, audience: AUDIENCE } }, { JWT_SECRET: 'test-secret-that-is-long-enough-for-hs256' })
  t.teardown(() => { run.child.kill('SIGKILL') })
  const listening = await run.lines.next((l) => /Server listening at/.test(String(l.msg)), 15000, 'the gateway to listen')
  const url = String(listening.msg).replace(/^.*Server listening at http/, 'ws')
  await backend.next('hello')

  const streamer = await connect(`${url}/lobby`, { token: tokenFor('streamer') })
  const idle = await connect(`${url}/lobby`, { token: tokenFor('idle') })
  await backend.next('open', 'streamer')
  await backend.next('open', 'idle')
  let sent = 0
  const pump = setInterval(() => {
    for (let i = 0; i < 20 && streamer.ws.readyState === streamer.ws.OPEN; i++) streamer.ws.send(JSON.stringify({ n: sent++ }))
  }, 1)
  await backend.next('message', 'streamer')
  run.child.kill('SIGTERM')
  const [streamerClose, idleClose] = await Promise.all([streamer.closed, idle.closed])
  clearInterval(pump)
  t.same(streamerClose, { code: 1001, reason: 'gateway shutting down' }, 'the busy client is closed with 1001 and told why')
  t.equal(idleClose.code, 1001, 'the idle client is closed with 1001')
  t.equal(await run.exited, 0, 'exit 0')
  const closes = backend.events.all.filter((e) => e.event === 'close')
  t.same(closes.map((e) => [e.user, e.code]).sort(), [['idle', 1001], ['streamer', 1001]], 'each client\'s close reached the backend')
  const received = backend.events.all.filter((e) => e.event === 'message').map((e) => (e.data as { n: number }).n)
  t.same(received, received.map((_, i) => i), `messages arrived in order with no gap (${received.length} of ${sent} sent before the close)`)
  const lastEvents = backend.events.all.filter((e) => e.user === 'streamer')
  t.equal(lastEvents[lastEvents.length - 1].event, 'close', 'nothing after the close')
  t.ok(run.lines.all.some((l) => /draining/.test(String(l.msg))), 'the drain is logged')
  await t.rejects(connect(`${url}/lobby`, { token: tokenFor('late') }), /ECONNREFUSED/, 'nobody gets in after shutdown')
})
