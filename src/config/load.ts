/**
 * Config loading: read → substitute `${ENV}` → validate against the schema
 * (filling defaults) → cross-field checks → freeze. Every problem is named by
 * its field path, and all of them are reported at once.
 */
import { readFileSync } from 'node:fs'
import { resolve, dirname } from 'node:path'
import { Ajv } from 'ajv'
import { formatSchemaErrors } from '../../protocol/validation.js'
import { GatewayConfig, type AuthConfig, type BackendConfig, type EndpointConfig, type IssuerConfig, type LimitsConfig, type PoolMemberConfig } from './schema.js'
import { GW_ERR_CONFIG } from '../errors.js'
import { memberUrlProblem } from './member-url.js'

export class ConfigError extends GW_ERR_CONFIG {
  constructor (readonly problems: string[]) {
    super(problems.join('\n  '))
  }
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: false })
const validate = ajv.compile<GatewayConfig>(GatewayConfig)

const RESERVED_PATHS = new Set(['/healthz', '/readyz', '/metrics'])

/** Configs this module produced, so they are never substituted or validated twice. */
const validated = new WeakSet<object>()

export function isValidated (config: unknown): config is Readonly<GatewayConfig> {
  return typeof config === 'object' && config !== null && validated.has(config)
}

/** Validates a config object (as parsed from JSON) and returns it frozen, with defaults filled. */
export function parseConfig (input: unknown, env: NodeJS.ProcessEnv = process.env, baseDir = process.cwd()): Readonly<GatewayConfig> {
  const problems: string[] = []
  const config = substituteEnv(structuredClone(input), env, '', problems)
  // the schema fills in the default algorithms; whether they were given decides some messages
  const algorithmsGiven = (config as { auth?: { algorithms?: unknown } } | null)?.auth?.algorithms !== undefined
  if (problems.length === 0 && !validate(config)) {
    problems.push(...formatSchemaErrors(validate.errors))
  }
  if (problems.length > 0) throw new ConfigError(problems)
  const valid = config as GatewayConfig
  checkAuth(valid, baseDir, algorithmsGiven, problems)
  checkEndpoints(valid.endpoints, problems)
  const workers = workersProblem(valid.server.workers, valid)
  if (workers) problems.push(`server.workers: ${workers}`)
  if (problems.length > 0) throw new ConfigError(problems)
  validated.add(valid)
  return deepFreeze(valid)
}

/** Reads and validates a config file; `${NAME}` comes from `env`, and a relative `publicKey` path from beside the file. */
export function loadConfigFile (path: string, env: NodeJS.ProcessEnv = process.env): Readonly<GatewayConfig> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError([`${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`])
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new ConfigError([`${path}: not valid JSON: ${(err as Error).message}`])
  }
  return parseConfig(raw, env, dirname(resolve(path)))
}

/** The limits one endpoint runs with: the global ones, overridden field by field. */
export function endpointLimits (config: Readonly<GatewayConfig>, endpoint: Readonly<EndpointConfig>): LimitsConfig {
  return { ...config.limits, ...endpoint.limits }
}

/** Why `workers` processes cannot run this config, if they cannot. */
export function workersProblem (workers: number, config: Pick<GatewayConfig, 'cluster'>): string | undefined {
  if (workers > 1 && config.cluster.redis === undefined) {
    return `is ${workers}, but more than one worker needs cluster.redis: workers are separate processes, and they know of each other's clients only through Redis`
  }
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g

function substituteEnv (value: unknown, env: NodeJS.ProcessEnv, path: string, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_, name: string) => {
      const found = env[name]
      if (found === undefined) {
        problems.push(`${path || '(root)'}: environment variable ${name} is not set`)
        return ''
      }
      return found
    })
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, `${path}[${i}]`, problems))
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [key, v] of Object.entries(value)) out[key] = substituteEnv(v, env, path ? `${path}.${key}` : key, problems)
    return out
  }
  return value
}

function checkAuth (config: GatewayConfig, baseDir: string, algorithmsGiven: boolean, problems: string[]): void {
  const { auth } = config
  if (auth.issuers === undefined) {
    checkKeySource(auth, 'auth', baseDir, problems, algorithmsGiven)
    return
  }
  // With issuers, every key and claim rule belongs to one issuer: a top-level one would be ambiguous.
  for (const field of ['secret', 'publicKey', 'jwksUrl', 'issuer', 'audience'] as const) {
    if (auth[field] !== undefined) problems.push(`auth.${field}: is not used with auth.issuers: set it in each issuers[] entry`)
  }
  if (algorithmsGiven) problems.push('auth.algorithms: is not used with auth.issuers: set it in each issuers[] entry')
  const seen = new Map<string, number>()
  auth.issuers.forEach((entry, i) => {
    const first = seen.get(entry.issuer)
    if (first !== undefined) problems.push(`auth.issuers[${i}].issuer: "${entry.issuer}" is already used by auth.issuers[${first}]`)
    else seen.set(entry.issuer, i)
    checkKeySource(entry, `auth.issuers[${i}]`, baseDir, problems, true)
  })
}

/** One issuer's keys: one source, algorithms of one family that the source can verify. */
function checkKeySource (source: AuthConfig | IssuerConfig, at: string, baseDir: string, problems: string[], algorithmsGiven: boolean): void {
  const hmac = source.algorithms.filter((a) => a.startsWith('HS'))
  const asymmetric = source.algorithms.filter((a) => !a.startsWith('HS'))
  // Mixing families is how HS/RS confusion attacks start: one key, one family.
  if (hmac.length > 0 && asymmetric.length > 0) {
    problems.push(`${at}.algorithms: must be all HS* or all asymmetric, not both (${source.algorithms.join(', ')})`)
  }
  const given = (['secret', 'publicKey', 'jwksUrl'] as const).filter((field) => source[field] !== undefined)
  if (given.length > 1) {
    problems.push(`${at}: set one of secret (HS*), publicKey or jwksUrl (RS*/PS*/ES*/EdDSA), not ${given.join(' and ')}`)
  } else if (source.jwksUrl !== undefined && hmac.length > 0) {
    const hint = algorithmsGiven ? '' : ' (the default): name the key set\'s algorithms, e.g. ["RS256"]'
    problems.push(`${at}.algorithms: a JWKS holds public keys, so ${hmac.join(', ')} cannot be checked with jwksUrl${hint}`)
  } else if (hmac.length > 0 && source.secret === undefined) {
    problems.push(`${at}.secret: is required for ${hmac.join(', ')}`)
  } else if (asymmetric.length > 0 && source.publicKey === undefined && source.jwksUrl === undefined) {
    problems.push(`${at}.publicKey: is required for ${asymmetric.join(', ')} (or ${at}.jwksUrl)`)
  }
  if (source.jwksUrl !== undefined) {
    const problem = jwksUrlProblem(source.jwksUrl)
    if (problem) problems.push(`${at}.jwksUrl: ${problem}`)
  }
  if (source.publicKey !== undefined && !source.publicKey.includes('-----BEGIN')) {
    const file = resolve(baseDir, source.publicKey)
    try {
      source.publicKey = readFileSync(file, 'utf8')
    } catch (err) {
      problems.push(`${at}.publicKey: not PEM text, and cannot read it as a file (${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`)
    }
  }
}

/** http is allowed (loopback identity services, tests); docs/configuration.md says why https is wanted elsewhere. */
function jwksUrlProblem (text: string): string | undefined {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return 'is not a valid URL'
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `must be an https:// (or http://) URL, not ${url.protocol}`
  // fetch refuses URLs with credentials; say so now rather than at the first handshake
  if (url.username !== '' || url.password !== '') return 'must not hold credentials (user:password@)'
  if (url.hash !== '') return 'must not have a #fragment'
}

function checkEndpoints (endpoints: EndpointConfig[], problems: string[]): void {
  const names = new Map<string, number>()
  const paths = new Map<string, number>()
  endpoints.forEach((endpoint, i) => {
    const routeShape = endpoint.path.replace(/:[^/]+/g, ':')
    const sameName = names.get(endpoint.name)
    const samePath = paths.get(routeShape)
    if (sameName !== undefined) problems.push(`endpoints[${i}].name: "${endpoint.name}" is already used by endpoints[${sameName}]`)
    if (samePath !== undefined) problems.push(`endpoints[${i}].path: "${endpoint.path}" clashes with endpoints[${samePath}].path`)
    if (RESERVED_PATHS.has(endpoint.path) || endpoint.path.startsWith('/_gatehouse/')) problems.push(`endpoints[${i}].path: "${endpoint.path}" is reserved for the gateway's own HTTP routes`)
    names.set(endpoint.name, i)
    paths.set(routeShape, i)
    checkBackend(endpoint, `endpoints[${i}].backend`, problems)
    const { minReconnectDelayMs, maxReconnectDelayMs } = endpoint.backend
    if (minReconnectDelayMs > maxReconnectDelayMs) {
      problems.push(`endpoints[${i}].backend.minReconnectDelayMs: must be <= maxReconnectDelayMs (${maxReconnectDelayMs})`)
    }
    if (endpoint.maxPerUser !== undefined && endpoint.duplicate !== 'allow') {
      problems.push(`endpoints[${i}].maxPerUser: applies only with duplicate "allow", but duplicate is "${endpoint.duplicate}"`)
    }
  })
}

/**
 * The members of an endpoint's pool: `url` is a pool of one. A member given
 * as a bare URL has weight 1 and its URL as id, without credentials or query,
 * which may hold secrets and the id is logged (docs/pools.md).
 */
export function backendMembers (backend: Readonly<BackendConfig>): PoolMemberConfig[] {
  const entries = backend.urls ?? (backend.url === undefined ? [] : [backend.url])
  return entries.map((entry) => typeof entry === 'string' ? { id: memberIdOf(entry), url: entry, weight: 1 } : { ...entry, weight: entry.weight ?? 1 })
}

function memberIdOf (url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
  } catch {
    return url
  }
}

function checkBackend (endpoint: EndpointConfig, at: string, problems: string[]): void {
  const { backend } = endpoint
  if ((backend.url === undefined) === (backend.urls === undefined)) {
    problems.push(`${at}: must have exactly one of url, urls`)
    return
  }
  const ids = new Map<string, number>()
  const urls = new Map<string, number>()
  backendMembers(backend).forEach((member, j) => {
    const field = backend.urls === undefined ? `${at}.url` : `${at}.urls[${j}]`
    const problem = memberUrlProblem(member.url)
    if (problem !== undefined) problems.push(`${field}: ${problem}`)
    const sameId = ids.get(member.id)
    const sameUrl = urls.get(member.url)
    if (sameUrl !== undefined) problems.push(`${field}: ${member.url} is already ${at}.urls[${sameUrl}]`)
    else if (sameId !== undefined) problems.push(`${field}: member id "${member.id}" is already used by ${at}.urls[${sameId}]`)
    ids.set(member.id, j)
    urls.set(member.url, j)
  })
  const param = /^params\.(.+)$/.exec(backend.route)?.[1]
  if (param !== undefined && !endpoint.path.split('/').includes(`:${param}`)) {
    problems.push(`${at}.route: routes by the path parameter "${param}", but the path "${endpoint.path}" has no :${param}`)
  }
}

function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}
