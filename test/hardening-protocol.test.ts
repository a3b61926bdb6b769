/**
 * Issue 10, protocol items: `hello.session` (a gateway restarted under its
 * configured node id loses nothing), the SDK refusing to listen without a
 * token, close reasons counted in bytes, empty `users` lists refused, and
 * the docs agreeing with the code.
 */
import { once } from 'node:events'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { WebSocket } from 'ws'
import { CloseCodes } from '../protocol/index.js'
import { GatehouseBackend } from '../src/sdk/index.js'
import { backendFor } from './helpers/backend.js'
import { runCli } from './helpers/cli.js'
import { connect } from './helpers/client.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { tokenFor } from './helpers/tokens.js'
import { BACKEND_TOKEN, captureLogger, recorder, synced } from './sdk-fixtures.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

type Test = { teardown (fn: () => unknown): void }

/** A `gatehouse` process; SIGKILLed at teardown if still running. */
async function gatewayProcess (t: Test, config: Record<string, unknown>): Promise<{ url: string, kill (): Promise<void> }> {
  const run = runCli(config)
  t.teardown(() => { if (run.child.exitCode === null) run.child.kill('SIGKILL') })
  const listening = await run.lines.next((l) => /Server listening at/.test(String(l.msg)), 15000, 'the gateway to listen')
  return {
    url: String(listening.msg).replace(/^.*Server listening at http/, 'ws'),
    async kill () {
      run.child.kill('SIGKILL')
      await run.exited
    }
  }
}

t.test('hello.session: kept across a link\'s redials, new with every gateway process under the same node id', async (t) => {
  const backend = await backendFor(t)
  const config = testConfig([{ name: 'lobby', path: '/lobby', backend: { url: backend.url, acks: true, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }],
    { server: { host: '127.0.0.1', port: 0, nodeId: 'gw-fixed', shutdownTimeoutMs: 3000 } })
  const first = await startGateway(t, config)
  const hello = await backend.next('hello')
  t.match(hello.session, /^\S{16,}$/, 'a random id')
  backend.kill()
  const redialled = await backend.next('hello')
  t.equal(redialled.session, hello.session, 'a redial continues the same sequence of seqs')

  await first.app.close()
  await startGateway(t, config)
  const next = await backend.next('hello')
  t.equal(next.gateway, 'gw-fixed', 'the same node id')
  t.not(next.session, hello.session, 'another process: another session')
})

t.test('a gateway restarted under its configured node id: an SDK backend that stayed up loses no message', async (t) => {
  // manual acks the service has not given yet: events processed and not acked when the gateway died
  const { handlers, calls } = recorder()
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger(), acks: 'manual', linkGraceMs: 60000 }, handlers)
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  const config = testConfig([{ name: 'lobby', path: '/lobby', backend: { url, token: BACKEND_TOKEN, acks: true, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }],
    { server: { host: '127.0.0.1', port: 0, nodeId: 'gw-fixed', shutdownTimeoutMs: 3000 }, log: { level: 'info' } })

  const firstSynced = synced(backend)
  const first = await gatewayProcess(t, config)
  await firstSynced
  const alice = await connect(`${first.url}/lobby`, { token: tokenFor('alice') })
  for (const n of [1, 2, 3]) alice.ws.send(JSON.stringify(`before-${n}`))
  await calls.next((c) => c === 'message alice "before-3"', 10000, 'the last message before the kill')
  const dropped = once(backend, 'linkClosed')
  await first.kill()
  await dropped

  const second = await gatewayProcess(t, config)
  const again = await connect(`${second.url}/lobby`, { token: tokenFor('alice') })
  const after = [1, 2, 3, 4, 5, 6].map((n) => `after-${n}`)
  for (const text of after) again.ws.send(JSON.stringify(text))
  await calls.next((c) => c === 'message alice "after-6"', 10000, 'the last message after the restart')
  t.same(calls.all.filter((c) => c.startsWith('message')), [1, 2, 3].map((n) => `message alice "before-${n}"`).concat(after.map((m) => `message alice "${m}"`)),
    'every message of both processes reached the handler, in order')
  t.same(calls.all.filter((c) => !c.startsWith('message')), ['open alice {}', 'close alice 1006 absent from gateway sync', 'open alice {}'],
    'the new process\'s sync closed the old connection; its own open was not taken for a replay')
  t.equal(backend.stats.duplicatesSkipped, 0, 'nothing of the new process was skipped')
})

t.test('the SDK refuses to listen without a token unless told to accept any caller', async (t) => {
  const { handlers, calls } = recorder()
  const bare = new GatehouseBackend({ logger: captureLogger() }, handlers)
  t.teardown(() => bare.stop())
  await t.rejects(bare.listen(), /no `token` set.*`allowUnauthenticated: true`/, 'no token, no flag: listen() rejects, naming both ways out')
  const emptyToken = new GatehouseBackend({ token: '', logger: captureLogger() }, handlers)
  t.teardown(() => emptyToken.stop())
  await t.rejects(emptyToken.listen(), /no `token` set/, 'an empty token (an unset variable) counts as none')

  const logger = captureLogger()
  const open = new GatehouseBackend({ allowUnauthenticated: true, logger }, handlers)
  t.teardown(() => open.stop())
  await open.listen()
  t.match(await logger.lines.next((l) => l.startsWith('warn ')), /accepts links without a token/, 'told explicitly: it listens, with a warning')

  const guarded = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, handlers)
  const { url } = await guarded.listen()
  t.teardown(() => guarded.stop())
  const raw = new WebSocket(url)
  raw.on('error', () => {})
  raw.on('open', () => raw.send(JSON.stringify([{ event: 'hello', gateway: 'evil', endpoint: 'lobby', session: 's', protocol: 1 }, { event: 'sync', users: [] },
    { event: 'open', user: 'admin', claims: {}, params: {} }])))
  const status = await new Promise<number | undefined>((resolve) => {
    raw.on('unexpected-response', (request, response) => {
      resolve(response.statusCode)
      request.destroy()
    })
  })
  t.equal(status, 401, 'a caller without the bearer token gets 401')
  t.equal(guarded.stats.refusedLinks, 1, 'the refused link is counted')
  t.same(calls.all, [], 'onOpen never ran')
})

t.test('a close reason is limited in UTF-8 bytes, as the wire limits it: longer is refused, never cut', async (t) => {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }]))
  await backend.next('hello')
  const alice = await connect(gateway.url('/lobby'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  backend.send({ action: 'close', user: 'alice', code: 4000, reason: 'é'.repeat(62) })
  backend.send({ action: 'send', user: 'alice', data: 'still here' })
  t.equal(await alice.next(), 'still here', 'a 62 × é reason (124 bytes) is refused: alice is not closed')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { reason: 'invalid_message' }), 1, 'and counted')
  t.ok(gateway.logs.some((l) => l.includes('action.reason: must be at most 123 bytes of UTF-8')), 'the log names the field and the limit')

  const reason = 'é'.repeat(61)
  backend.send({ action: 'close', user: 'alice', code: 4000, reason })
  t.same(await alice.closed, { code: 4000, reason }, 'a 122-byte reason reaches the player whole')
  t.equal((await backend.next('close', 'alice')).reason, reason, 'and the backend\'s close event')
})

t.test('an empty users list is refused and counted, like any action that names nobody', async (t) => {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }]))
  await backend.next('hello')
  const alice = await connect(gateway.url('/lobby'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  backend.send({ action: 'send', users: [], data: 'to nobody' })
  backend.send({ action: 'close', users: [] })
  backend.send({ action: 'send', user: 'alice', data: 'marker' })
  t.equal(await alice.next(), 'marker', 'the empty users lists are refused: alice gets only the marker')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { reason: 'invalid_message' }), 2, 'both are counted as invalid messages')
  t.equal(gateway.logs.filter((l) => l.includes('action.users: must NOT have fewer than 1 items')).length, 2, 'each logged, naming the field')
})

t.test('close codes: every one in the catalog is used by the gateway and listed in PROTOCOL.md §7', async (t) => {
  const sources = files(join(ROOT, 'src')).concat(files(join(ROOT, 'routes'))).map((file) => readFileSync(file, 'utf8'))
  const protocol = readFileSync(join(ROOT, 'protocol', 'PROTOCOL.md'), 'utf8')
  const table = protocol.slice(protocol.indexOf('## 7.'), protocol.indexOf('## 8.'))
  const rows = [...table.matchAll(/^\| (\d{4}) \|([^|]*)\|/gm)].map(([, code, reason]) => ({ code: Number(code), reason }))
  for (const [name, { code, reason }] of Object.entries(CloseCodes)) {
    t.ok(sources.some((text) => new RegExp(`CloseCodes\\.${name}\\b`).test(text)), `${name} (${code}) is sent or reported somewhere`)
    // a row without a quoted reason stands for reasons that vary (the backend's, or ws's own)
    t.ok(rows.some((row) => row.code === code && (row.reason.includes(`\`${reason}\``) || !row.reason.includes('`'))), `${code} "${reason}" is in the table`)
  }
  for (const row of rows) t.ok(Object.values(CloseCodes).some((c) => c.code === row.code), `${row.code} in the table is in the catalog`)
})

t.test('no file of the repository cites a design document users do not have', async (t) => {
  const cited = 'DESIGN' + '.md'
  const roots = ['src', 'protocol', 'routes', 'docs', 'examples', 'bench', 'test'].map((dir) => join(ROOT, dir))
  const offenders = roots.flatMap(files).concat(join(ROOT, 'README.md'))
    .filter((file) => readFileSync(file, 'utf8').includes(cited))
    .map((file) => file.slice(ROOT.length))
  t.same(offenders, [], 'cite protocol/PROTOCOL.md or docs/ instead')
})

/** Text files under `dir`, recursively. */
function files (dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return files(path)
    return /\.(ts|js|md|html|css|json)$/.test(name) ? [path] : []
  })
}
