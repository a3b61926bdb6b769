/**
 * The published packages as a user gets them: `npm pack` the three
 * workspaces, install the tarballs into an empty project (from the npm cache
 * `npm ci` filled), run the CLI, import each package, register the fastify
 * plugin, and type-check a small consumer under `nodenext` and `bundler`
 * resolution with the repository's TypeScript.
 */
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

// packing, installing and type-checking take ~30 s alone and far more on a loaded machine: the file's own bound, not the runner's default 60 s
t.setTimeout(300_000)

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
const NAMES = ['gatehouse-gateway', 'gatehouse-backend', 'gatehouse-client']
const run = promisify(execFile)

/** The parent `npm test` sets npm_* variables (lifecycle, package, workspace): the child npm must not inherit them. */
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('npm_') || key === 'npm_config_cache' || key === 'npm_config_registry'))

async function sh (cmd: string, args: string[], cwd: string): Promise<{ stdout: string, stderr: string }> {
  return await run(cmd, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 })
}

interface PackResult {
  name: string
  filename: string
  files: Array<{ path: string }>
  bundled: string[]
}

const CONSUMER = `
import { createGateway, gatehousePlugin, parseConfig, requestSerializer, type GatewayConfig } from 'gatehouse-gateway'
import { CloseCodes } from 'gatehouse-gateway/protocol'
import { GatehouseBackend, type BackendHandlers, type Claims } from 'gatehouse-backend'
import { GatehouseClient, type ClosedEvent } from 'gatehouse-client'
import Fastify from 'fastify'

const handlers: BackendHandlers = {
  onOpen (user: string, claims: Claims) { console.log(user, claims.sub) },
  onMessage (user, data, { binary, params }) { console.log(user, data, binary, params) }
}
export const backend = new GatehouseBackend({ token: 'secret' }, handlers)
export const client = new GatehouseClient('wss://example.test/lobby', { token: async () => 'jwt', outboxLimit: 10 })
client.on('closed', (event: ClosedEvent) => console.log(event.retry, event.delayMs))
export const config: GatewayConfig = parseConfig({ auth: { secret: 'x'.repeat(32) }, endpoints: [{ name: 'lobby', path: '/lobby', backend: { url: 'ws://127.0.0.1:4001', token: 'secret' } }] })
export const code: number = CloseCodes.REPLACED.code
export async function embed (): Promise<void> {
  const app = Fastify({ logger: { serializers: { req: requestSerializer } } })
  await app.register(gatehousePlugin, { config })
  const standalone = await createGateway(config)
  await standalone.close()
}
`

/** Runs inside the consumer: every package imports, the plugin serves on an app of the user's own. */
const SMOKE = `
import { gatehousePlugin } from 'gatehouse-gateway'
import { CloseCodes } from 'gatehouse-gateway/protocol'
import { GatehouseBackend } from 'gatehouse-backend'
import { GatehouseClient, retryAfterClose } from 'gatehouse-client'
import Fastify from 'fastify'

const app = Fastify()
app.get('/mine', async () => 'my route')
await app.register(gatehousePlugin, { config: { auth: { secret: 'x'.repeat(32) }, endpoints: [{ name: 'lobby', path: '/lobby', backend: { url: 'ws://127.0.0.1:9', token: 't' } }] } })
await app.ready()
const health = await app.inject('/healthz')
const mine = await app.inject('/mine')
const lobby = await app.inject('/lobby')
await app.close()
console.log(JSON.stringify({
  health: health.statusCode, mine: mine.body, lobby: lobby.statusCode,
  backend: typeof GatehouseBackend, client: typeof GatehouseClient, replaced: retryAfterClose(CloseCodes.REPLACED.code, '')
}))
`

t.test('packed tarballs install into an empty project; the CLI runs, imports work, types check', { timeout: 240_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'gatehouse-packages-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const tarballs = join(work, 'tarballs')
  const app = join(work, 'app')
  mkdirSync(tarballs)
  mkdirSync(app)

  // prepack builds each package from the sources (clean dist/, then tsc)
  const packed = JSON.parse((await sh('npm', ['pack', '--workspaces', '--json', '--pack-destination', tarballs], ROOT)).stdout) as PackResult[]
  t.same(packed.map((p) => p.name).sort(), [...NAMES].sort(), 'one tarball per package')
  for (const pack of packed) {
    const files = pack.files.map((f) => f.path)
    t.ok(files.includes('README.md') && files.includes('LICENSE') && files.includes('package.json'), `${pack.name}: README, LICENSE, package.json`)
    t.ok(files.some((f) => f.endsWith('.d.ts')), `${pack.name}: types`)
    t.same(files.filter((f) => !/^(dist\/.*\.(js|d\.ts)|README\.md|LICENSE|package\.json)$/.test(f)), [], `${pack.name}: nothing but dist/*.js, *.d.ts, README, LICENSE`)
    t.same(files.filter((f) => /(^|\/)(test|bench|examples)\//.test(f)), [], `${pack.name}: no tests, benches or examples`)
  }

  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  const typesNode = JSON.parse(readFileSync(join(ROOT, 'node_modules', '@types', 'node', 'package.json'), 'utf8')).version as string
  await sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...packed.map((p) => join(tarballs, p.filename)), `@types/node@${typesNode}`], app)

  const manifest = (name: string): Record<string, any> => JSON.parse(readFileSync(join(app, 'node_modules', name, 'package.json'), 'utf8'))
  t.same(manifest('gatehouse-client').dependencies ?? {}, {}, 'the browser client has no dependencies')
  const tree = JSON.parse((await sh('npm', ['ls', '--all', '--json'], app)).stdout) as { dependencies: Record<string, any> }
  const names = (node: { dependencies?: Record<string, any> }): string[] => Object.entries(node.dependencies ?? {}).flatMap(([name, child]) => [name, ...names(child)])
  const sdkTree = names(tree.dependencies['gatehouse-backend'])
  t.ok(sdkTree.includes('ws'), 'the SDK depends on ws')
  t.same(sdkTree.filter((name) => /^(fastify|@fastify\/.*|ioredis|prom-client)$/.test(name)), [], 'no fastify, ioredis or prom-client under the SDK')

  const bin = join(app, 'node_modules', '.bin', 'gatehouse')
  t.match((await sh(bin, ['--help'], app)).stdout, /usage: gatehouse \[--config FILE\]/, 'gatehouse --help prints the usage')
  writeFileSync(join(app, 'bad.json'), JSON.stringify({ endpoints: [] }))
  const bad = await sh(bin, ['--config', 'bad.json'], app).then(() => undefined, (err: { code: number, stderr: string }) => err)
  t.equal(bad?.code, 1, 'a bad config exits 1')
  t.match(bad?.stderr, /bad\.json: invalid configuration/, 'and names the file and the problem')

  writeFileSync(join(app, 'smoke.mjs'), SMOKE)
  const smoke = JSON.parse((await sh('node', ['smoke.mjs'], app)).stdout.trim().split('\n').pop() ?? '{}')
  t.same(smoke, { health: 200, mine: 'my route', lobby: 426, backend: 'function', client: 'function', replaced: 'never' }, 'each package imports; the plugin serves its routes beside the app\'s own')

  writeFileSync(join(app, 'consumer.ts'), CONSUMER)
  const base = { strict: true, noEmit: true, skipLibCheck: false, target: 'ES2022', lib: ['ES2022', 'DOM'], types: ['node'] }
  for (const [name, options] of [['nodenext', { module: 'NodeNext', moduleResolution: 'NodeNext' }], ['bundler', { module: 'ESNext', moduleResolution: 'Bundler' }]] as const) {
    writeFileSync(join(app, `tsconfig.${name}.json`), JSON.stringify({ compilerOptions: { ...base, ...options }, files: ['consumer.ts'] }))
    const checked = await sh('node', [TSC, '-p', `tsconfig.${name}.json`], app).then(() => '', (err: { stdout: string }) => err.stdout)
    t.equal(checked, '', `the consumer type-checks under moduleResolution ${name} (skipLibCheck off)`)
  }
})
