/** Config: schema, defaults, env substitution, and errors that name the field. The CLI exits 1 on them, without a stack trace. */
import t from 'tap'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig, loadConfigFile, ConfigError } from '../src/index.js'
import { rsaKeys } from './helpers/tokens.js'
import { runCli } from './helpers/cli.js'

const minimal = { auth: { secret: 's' }, endpoints: [{ name: 'lobby', path: '/lobby', backend: { url: 'ws://127.0.0.1:4001' } }] }

function problems (input: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(input, env)
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  return []
}

t.test('defaults fill what is not given, and the result is frozen', async (t) => {
  const config = parseConfig(minimal, {})
  t.equal(config.server.port, 8080, 'server.port defaults to 8080')
  t.equal(config.server.host, '127.0.0.1', 'server.host defaults to loopback')
  t.same(config.auth.algorithms, ['HS256'], 'auth.algorithms defaults to HS256')
  t.same(config.auth.tokenSources, ['header', 'subprotocol', 'query'], 'auth.tokenSources defaults to all three')
  t.equal(config.endpoints[0].duplicate, 'replace', 'duplicate defaults to replace')
  t.equal(config.limits.maxPayloadBytes, 65536, 'limits.maxPayloadBytes defaults to 64 KiB')
  t.equal(config.queue.graceMs, 30000, 'queue.graceMs defaults to 30 s')
  t.ok(Object.isFrozen(config.endpoints[0].backend), 'nested config objects are frozen')
  t.throws(() => { (config.server as { port: number }).port = 1 }, 'writing to the config throws')
})

t.test('${NAME} comes from the environment; a missing one names the field', async (t) => {
  const input = { ...minimal, auth: { secret: '${JWT_SECRET}' }, endpoints: [{ ...minimal.endpoints[0], backend: { url: 'ws://127.0.0.1:4001', token: 'Bearer-${TOKEN}' } }] }
  const config = parseConfig(input, { JWT_SECRET: 'from-env', TOKEN: 'abc' })
  t.equal(config.auth.secret, 'from-env', '${JWT_SECRET} is substituted')
  t.equal(config.endpoints[0].backend.token, 'Bearer-abc', '${TOKEN} is substituted inside a string')
  t.same(problems(input, { TOKEN: 'abc' }), ['auth.secret: environment variable JWT_SECRET is not set'], 'an unset variable names the field and the variable')
})

t.test('bad configs: each problem names its field and what was expected', async (t) => {
  t.same(problems({ ...minimal, server: { port: '80' } }), ['server.port: must be integer'], 'a string port is not an integer')
  t.same(problems({ ...minimal, server: { port: 70000 } }), ['server.port: must be <= 65535'], 'a port above 65535 is refused')
  t.same(problems({ ...minimal, srever: {} }), ['srever: is not a known field'], 'an unknown top-level field is named')
  t.same(problems({ auth: { secret: 's' } }), ['endpoints: is required'], 'endpoints is required')
  t.same(problems({ ...minimal, endpoints: [] }), ['endpoints: must NOT have fewer than 1 items'], 'endpoints may not be empty')
  t.same(problems({ ...minimal, endpoints: [{ name: 'x', path: 'lobby', backend: { url: 'http://a' } }] }), [
    'endpoints[0].path: must match pattern "^/"',
    'endpoints[0].backend.url: must match pattern "^wss?://"'
  ], 'a path without / and an http backend url are both named')
  t.same(problems({ ...minimal, endpoints: [{ ...minimal.endpoints[0], duplicate: 'kick' }] }), ['endpoints[0].duplicate: must be one of "replace", "reject", "allow"'], 'an unknown duplicate policy lists the allowed ones')
  t.same(problems({ ...minimal, endpoints: [{ ...minimal.endpoints[0], limits: { burst: 0 } }] }), ['endpoints[0].limits.burst: must be >= 1'], 'an endpoint\'s limits are checked too')
  t.same(problems({ ...minimal, auth: { secret: 's', algorithms: ['none'] } }), [
    'auth.algorithms[0]: must be one of "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"'
  ], 'alg none is not an allowed algorithm')
  t.same(problems({ ...minimal, auth: { secret: 's', algorithms: ['HS256', 'RS256'] } }).slice(0, 1), ['auth.algorithms: must be all HS* or all asymmetric, not both (HS256, RS256)'], 'HS and asymmetric algorithms may not be mixed')
  t.same(problems({ ...minimal, auth: { algorithms: ['RS256'] } }), ['auth.publicKey: is required for RS256 (or auth.jwksUrl)'], 'RS256 needs auth.publicKey or auth.jwksUrl')
  t.same(problems({ ...minimal, auth: {} }), ['auth.secret: is required for HS256'], 'HS256 needs auth.secret')
  t.same(problems({ ...minimal, endpoints: [minimal.endpoints[0], { ...minimal.endpoints[0], path: '/lobby' }] }), [
    'endpoints[1].name: "lobby" is already used by endpoints[0]',
    'endpoints[1].path: "/lobby" clashes with endpoints[0].path'
  ], 'a repeated endpoint name and path are both named')
  t.same(problems({ ...minimal, endpoints: [{ ...minimal.endpoints[0], path: '/metrics' }] }), ['endpoints[0].path: "/metrics" is reserved for the gateway\'s own HTTP routes'], 'an endpoint may not take a gateway route')
  t.same(problems(42), ['(root): must be object'], 'a config that is not an object is refused at the root')
  t.same(problems({ ...minimal, endpoints: [{ ...minimal.endpoints[0], backend: { url: 'ws://127.0.0.1:4001/#x' } }] }), ['endpoints[0].backend.url: must not have a #fragment'], 'a backend url may not carry a #fragment')
  t.same(problems({ ...minimal, endpoints: [{ ...minimal.endpoints[0], backend: { url: 'ws://', connectTimeoutMs: 0 } }] }), [
    'endpoints[0].backend.connectTimeoutMs: must be >= 100'
  ], 'backend.connectTimeoutMs has a floor')
})

t.test('publicKey may be PEM text or a file path, resolved beside the config file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-config-'))
  const { publicKey } = rsaKeys()
  writeFileSync(join(dir, 'auth.pem'), publicKey)
  const auth = { publicKey: 'auth.pem', algorithms: ['RS256'] }
  writeFileSync(join(dir, 'gateway.config.json'), JSON.stringify({ ...minimal, auth }))
  t.equal(loadConfigFile(join(dir, 'gateway.config.json')).auth.publicKey, publicKey, 'a publicKey path is read relative to the config file')
  t.equal(parseConfig({ ...minimal, auth: { ...auth, publicKey } }).auth.publicKey, publicKey, 'a publicKey given as PEM text is kept as is')
  t.match(problems({ ...minimal, auth: { ...auth, publicKey: 'missing.pem' } })[0], /^auth\.publicKey: not PEM text, and cannot read it as a file \(.*missing\.pem: ENOENT\)$/, 'a publicKey that is neither PEM nor a readable file says both')
})

t.test('a file that is not JSON, or not there, is a config error too', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-config-'))
  writeFileSync(join(dir, 'bad.json'), '{ "server": ')
  t.throws(() => loadConfigFile(join(dir, 'bad.json')), { code: 'GW_ERR_CONFIG', message: /bad\.json: not valid JSON/ }, 'a file that is not JSON is a config error naming the file')
  t.throws(() => loadConfigFile(join(dir, 'absent.json')), { code: 'GW_ERR_CONFIG', message: /absent\.json: cannot read: ENOENT/ }, 'a missing file is a config error naming the file')
})

t.test('the CLI prints every problem by field and exits 1, with no stack trace', async (t) => {
  const run = runCli({ server: { port: 'eighty' }, auth: { secret: '${NOT_SET_ANYWHERE}' }, endpoints: [] }, {})
  t.equal(await run.exited, 1, 'the CLI exits 1 on a missing env variable')
  t.match(run.stderr(), /^gatehouse: .*gateway\.config\.json: invalid configuration:\n {2}auth\.secret: environment variable NOT_SET_ANYWHERE is not set\n$/, 'stderr names the file and the field, nothing else')
  const second = runCli({ server: { port: 'eighty' }, auth: { secret: 'x' }, endpoints: [] })
  t.equal(await second.exited, 1, 'the CLI exits 1 on schema problems')
  t.match(second.stderr(), /server\.port: must be integer/, 'stderr names server.port')
  t.match(second.stderr(), /endpoints: must NOT have fewer than 1 items/, 'stderr names endpoints')
  t.notMatch(second.stderr(), /\bat .*\.js:\d+/, 'no stack trace')
  const garbage = runCli('not json')
  t.equal(await garbage.exited, 1, 'the CLI exits 1 on a file that is not JSON')
  t.match(garbage.stderr(), /not valid JSON/, 'stderr says the file is not JSON')
})

t.test('cluster and workers: every problem named by field', async (t) => {
  t.same(problems({ ...minimal, cluster: { redis: 'http://127.0.0.1:6379' } }), ['cluster.redis: must match pattern "^rediss?://"'], 'cluster.redis must be a redis url')
  t.same(problems({ ...minimal, cluster: { redis: 'redis://x', whenRedisDown: 'maybe' } }), ['cluster.whenRedisDown: must be one of "accept", "reject"'], 'cluster.whenRedisDown must be accept or reject')
  t.same(problems({ ...minimal, cluster: { redis: 'redis://x', presenceTtlMs: 10 } }), ['cluster.presenceTtlMs: must be >= 1000'], 'cluster.presenceTtlMs has a floor')
  t.same(problems({ ...minimal, server: { workers: 4 } }), ["server.workers: is 4, but more than one worker needs cluster.redis: workers are separate processes, and they know of each other's clients only through Redis"], 'several workers without Redis are refused, and why')
  t.equal(parseConfig({ ...minimal, server: { workers: 4 }, cluster: { redis: 'redis://127.0.0.1:6379' } }, {}).server.workers, 4, 'several workers with Redis are allowed')
  t.same(parseConfig(minimal, {}).cluster, { name: 'gatehouse', presenceTtlMs: 15000, handoffTimeoutMs: 2000, whenRedisDown: 'accept' }, 'no Redis by default: a node alone')
})
