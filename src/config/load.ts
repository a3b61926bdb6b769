/**
 * Config loading: read → substitute `${ENV}` → validate against the schema
 * (filling defaults) → cross-field checks → freeze. Every problem is named by
 * its field path, and all of them are reported at once.
 */
import { readFileSync } from 'node:fs'
import { resolve, dirname } from 'node:path'
import { Ajv } from 'ajv'
import { formatSchemaErrors } from '../../protocol/validation.js'
import { GatewayConfig, type BackendConfig, type EndpointConfig, type LimitsConfig, type PoolMemberConfig } from './schema.js'
import { GW_ERR_CONFIG } from '../errors.js'

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
  if (problems.length === 0 && !validate(config)) {
    problems.push(...formatSchemaErrors(validate.errors))
  }
  if (problems.length > 0) throw new ConfigError(problems)
  const valid = config as GatewayConfig
  checkAuth(valid, baseDir, problems)
  checkEndpoints(valid.endpoints, problems)
  checkPoolsAlone(valid, problems)
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

function checkAuth (config: GatewayConfig, baseDir: string, problems: string[]): void {
  const { auth } = config
  const hmac = auth.algorithms.filter((a) => a.startsWith('HS'))
  const asymmetric = auth.algorithms.filter((a) => !a.startsWith('HS'))
  // Mixing families is how HS/RS confusion attacks start: one key, one family.
  if (hmac.length > 0 && asymmetric.length > 0) {
    problems.push(`auth.algorithms: must be all HS* or all asymmetric, not both (${auth.algorithms.join(', ')})`)
  }
  if (auth.secret !== undefined && auth.publicKey !== undefined) {
    problems.push('auth: set either secret (HS*) or publicKey (RS*/PS*/ES*/EdDSA), not both')
  } else if (hmac.length > 0 && auth.secret === undefined) {
    problems.push(`auth.secret: is required for ${hmac.join(', ')}`)
  } else if (asymmetric.length > 0 && auth.publicKey === undefined) {
    problems.push(`auth.publicKey: is required for ${asymmetric.join(', ')}`)
  }
  if (auth.publicKey !== undefined && !auth.publicKey.includes('-----BEGIN')) {
    const file = resolve(baseDir, auth.publicKey)
    try {
      auth.publicKey = readFileSync(file, 'utf8')
    } catch (err) {
      problems.push(`auth.publicKey: not PEM text, and cannot read it as a file (${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`)
    }
  }
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
    // `ws` refuses some URLs the pattern lets through; say so now, not at the first dial
    let url: URL | undefined
    try {
      url = new URL(member.url)
    } catch {
      problems.push(`${field}: is not a valid URL`)
    }
    if (url?.hash) problems.push(`${field}: must not have a #fragment`)
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

/**
 * Pools keep their assignments in the process: two gateway nodes could serve
 * one key from two members, so pools of several members run on one gateway
 * only, for now (docs/pools.md).
 */
function checkPoolsAlone (config: GatewayConfig, problems: string[]): void {
  if (config.cluster.redis === undefined) return
  if (config.admin !== undefined) problems.push('admin: members registered at run time join the pool of one gateway only for now, but cluster.redis is set (docs/pools.md)')
  config.endpoints.forEach((endpoint, i) => {
    if ((endpoint.backend.urls?.length ?? 0) > 1) {
      problems.push(`endpoints[${i}].backend.urls: a pool of several members runs on one gateway only for now, but cluster.redis is set (docs/pools.md)`)
    }
  })
}

function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}
