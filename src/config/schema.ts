/**
 * The `gateway.config.json` schema (docs/configuration.md): validation,
 * defaults and the config types all come from here.
 */
import { Type, type Static } from '@sinclair/typebox'

const strict = { additionalProperties: false }
const Ms = (def: number, description: string) => Type.Integer({ minimum: 0, default: def, description })

/** Limit fields with or without defaults: endpoints override only what they name. */
function limitFields (withDefaults: boolean) {
  const d = <T>(value: T) => (withDefaults ? { default: value } : {})
  return {
    maxPayloadBytes: Type.Integer({ minimum: 1, ...d(65536), description: 'largest client frame; bigger closes with 1009' }),
    messagesPerSecond: Type.Number({ exclusiveMinimum: 0, ...d(50), description: 'token-bucket refill rate per user, kept across reconnects; past it closes with 1008' }),
    burst: Type.Integer({ minimum: 1, ...d(100), description: 'token-bucket size per user' }),
    maxConnections: Type.Integer({ minimum: 1, ...d(100000), description: 'open client sockets; past it handshakes get 503' }),
    allowedOrigins: Type.Array(Type.String({ minLength: 1 }), { ...d([]), description: 'browser Origins allowed; empty allows any' }),
    maxBufferedBytes: Type.Integer({ minimum: 1024, ...d(1048576), description: 'unsent bytes a client may lag behind before it is closed with 1013' }),
    heartbeatIntervalMs: Type.Integer({ minimum: 50, ...d(30000), description: 'ping period; a client that misses a pong is dropped (1006)' })
  }
}

export const Limits = Type.Object(limitFields(true), { ...strict, default: {} })
export const LimitOverrides = Type.Partial(Type.Object(limitFields(false), strict))

/** A string enum whose type is the union of its values (and whose errors list them). */
const Enum = <const T extends readonly string[]>(values: T, options: object = {}) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: values, ...options })

export const ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const
export const Algorithm = Enum(ALGORITHMS)
export const TokenSource = Enum(['header', 'subprotocol', 'query'])
const OneOrMany = Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })])

/** Where one issuer's keys come from: exactly one of these (checked in src/config/load.ts). */
const keySource = {
  secret: Type.Optional(Type.String({ minLength: 1, description: 'HMAC secret for HS* tokens' })),
  publicKey: Type.Optional(Type.String({ minLength: 1, description: 'PEM text, or a path to a PEM file, for RS*/PS*/ES*/EdDSA tokens' })),
  jwksUrl: Type.Optional(Type.String({ minLength: 1, description: 'http(s) URL of a JWKS (JSON Web Key Set) for RS*/PS*/ES*/EdDSA tokens, picked by their kid' }))
}

export const Issuer = Type.Object({
  issuer: Type.String({ minLength: 1, description: 'the iss claim of this issuer\'s tokens' }),
  ...keySource,
  algorithms: Type.Array(Algorithm, { minItems: 1, uniqueItems: true, description: 'algorithms accepted from this issuer' }),
  audience: Type.Optional(OneOrMany)
}, strict)

export const Auth = Type.Object({
  ...keySource,
  algorithms: Type.Array(Algorithm, { minItems: 1, uniqueItems: true, default: ['HS256'] }),
  issuer: Type.Optional(OneOrMany),
  audience: Type.Optional(OneOrMany),
  issuers: Type.Optional(Type.Array(Issuer, { minItems: 1, description: 'several issuers, each with its own keys, picked by the token\'s iss; replaces the fields above' })),
  jwksTimeoutMs: Type.Integer({ minimum: 100, default: 3000, description: 'longest one JWKS fetch may take' }),
  jwksCooldownMs: Type.Integer({ minimum: 100, default: 10000, description: 'least time between two JWKS fetches caused by handshakes (an unknown kid, or after a failed fetch)' }),
  jwksRefreshMs: Type.Integer({ minimum: 1000, default: 600000, description: 'period of the background JWKS refresh' }),
  requireExp: Type.Boolean({ default: true, description: 'refuse tokens without an exp claim; false lets tokens that never expire in' }),
  userClaim: Type.String({ minLength: 1, default: 'sub', description: 'claim holding the user id; a dotted path reaches nested claims' }),
  maxUserIdLength: Type.Integer({ minimum: 1, default: 256, description: 'longest user id, in UTF-8 bytes; a longer one is refused' }),
  tokenSources: Type.Array(TokenSource, { minItems: 1, uniqueItems: true, default: ['header', 'subprotocol', 'query'] }),
  clockToleranceSec: Type.Number({ minimum: 0, default: 0, description: 'leeway for exp/nbf checks' }),
  verifyCacheSize: Type.Integer({ minimum: 0, default: 10000, description: 'verified tokens remembered per issuer (LRU, each until its exp and at most 10 minutes; tokens over 4,096 characters are not kept); 0 verifies every handshake' })
}, strict)

const BackendUrl = Type.String({ pattern: '^wss?://', description: 'ws:// or wss:// URL the gateway dials' })

/** A pool member in full; a bare URL string is `{ id: <the URL>, url, weight: 1 }` (docs/pools.md). */
export const PoolMember = Type.Object({
  id: Type.String({ minLength: 1, description: 'the member in hello, logs and metrics' }),
  url: BackendUrl,
  weight: Type.Number({ exclusiveMinimum: 0, default: 1, description: 'share of new keys relative to the other members (weighted rendezvous hashing)' })
}, strict)

/** A member as written: a URL, or the full form. `if/then/else` rather than a union, so an error names the field. */
const PoolMemberEntry = Type.Unsafe<string | Static<typeof PoolMember>>({
  if: { type: 'string' },
  then: BackendUrl,
  else: PoolMember
})

export const Backend = Type.Object({
  url: Type.Optional(BackendUrl),
  urls: Type.Optional(Type.Array(PoolMemberEntry, { minItems: 1, description: 'a pool: one link per member, each client routed to one member by `route` (docs/pools.md)' })),
  route: Type.String({ pattern: '^(user|params\\.[^.]+|claims\\..+)$', default: 'user', description: 'the routing key: "user", "params.<name>" or "claims.<dotted path>"' }),
  failoverMs: Ms(5000, 'a pool member down this long is out: its keys move to the other members'),
  lingerMs: Ms(30000, 'a key stays on its member this long after its last client leaves'),
  token: Type.Optional(Type.String({ minLength: 1, description: 'sent as Authorization: Bearer to the backend' })),
  pingIntervalMs: Ms(10000, 'ping period on the link; a missed pong drops and redials it'),
  connectTimeoutMs: Type.Integer({ minimum: 100, default: 4000, description: 'give up one dial attempt after this long' }),
  minReconnectDelayMs: Type.Integer({ minimum: 1, default: 250, description: 'first redial delay; doubles per failure, with jitter' }),
  maxReconnectDelayMs: Ms(10000, 'redial delay cap'),
  mask: Type.Boolean({ default: true, description: 'false: link frames go with an all-zero masking key, so the gateway neither XORs nor copies what it writes (about 5 % of its CPU per message); RFC 6455 wants an unpredictable key against proxies that misread WebSocket traffic, so only on a wss:// link or a network you trust' }),
  acks: Type.Boolean({ default: false, description: 'acknowledged delivery: events carry seq and are kept until the backend acks them' }),
  encoding: Enum(['json', 'binary', 'raw'], { default: 'json', description: 'binary: players\' binary frames and the backend\'s binary sends travel raw in binary link frames, not base64; raw: text frames too, with no JSON on the path (PROTOCOL.md §2a); the backend must support it' }),
  refresh: Type.Boolean({ default: false, description: 'a player who connects again with a new token while connected sends the backend a refresh event (new claims); off, the backend sees nothing, and later syncs carry the new claims' }),
  maxFrameBytes: Type.Integer({ minimum: 1024, default: 16777216, description: 'largest frame accepted from the backend; a bigger one drops and redials the link' })
}, strict)

/** Connections one user may hold on a `duplicate: "allow"` endpoint when `maxPerUser` is not set. */
export const DEFAULT_MAX_PER_USER = 10

export const Endpoint = Type.Object({
  name: Type.String({ pattern: '^[A-Za-z0-9_-]+$', description: 'label in logs, metrics and hello' }),
  path: Type.String({ pattern: '^/', description: 'URL path; may hold :params' }),
  backend: Backend,
  duplicate: Enum(['replace', 'reject', 'allow'], { default: 'replace', description: 'a second connection of a user: replace the old one (4409), refuse the new one (409), or allow several (up to maxPerUser)' }),
  maxPerUser: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: `with duplicate "allow": connections one user may hold on the endpoint; past it the oldest is closed with 4409 (default ${DEFAULT_MAX_PER_USER})` })),
  enforceExpiry: Type.Boolean({ default: false, description: 'close with 4401 when the token expires' }),
  resumeGraceMs: Ms(5000, 'a client dropped without a close frame is held this long for the same user to come back; 0 reports the close at once'),
  limits: Type.Optional(LimitOverrides)
}, strict)

export const Queue = Type.Object({
  maxEvents: Type.Integer({ minimum: 1, default: 100000, description: 'events held per endpoint; a close is always taken' }),
  maxBytes: Type.Integer({ minimum: 1024, default: 67108864, description: 'bytes held per endpoint, as encoded' }),
  maxClientBytes: Type.Integer({ minimum: 1024, default: 1048576, description: "one client's share of maxBytes; a client whose messages would pass it is closed with 1008" }),
  graceMs: Ms(30000, 'how long clients are held while their backend is away')
}, { ...strict, default: {} })

export const Server = Type.Object({
  host: Type.String({ default: '127.0.0.1' }),
  port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  nodeId: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'this process in hello and logs; generated when absent; at most 200 characters, as it begins every connection id (`conn`, at most 256)' })),
  shutdownTimeoutMs: Ms(10000, 'longest a SIGTERM drain may take'),
  headersTimeoutMs: Type.Integer({ minimum: 1000, maximum: 300000, default: 10000, description: 'longest a client may take to send a request head (the WebSocket handshake); a slower one gets 408 and its socket ended' }),
  backlog: Type.Integer({ minimum: 1, default: 4096, description: "the listen socket's accept queue (the kernel caps it at net.core.somaxconn); Node's 511 overflows in a reconnect storm, and a dropped SYN costs its client a 1 s retransmit" }),
  workers: Type.Integer({ minimum: 1, default: 1, description: 'worker processes sharing the port (node:cluster), each a node of the cluster; more than 1 needs cluster.redis' })
}, { ...strict, default: {} })

export const Cluster = Type.Object({
  redis: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'redis:// URL; gateways sharing it (and cluster.name) act as one gateway' })),
  name: Type.String({ pattern: '^[A-Za-z0-9_.-]+$', default: 'gatehouse', description: 'the Redis key prefix, and `cluster` in hello' }),
  presenceTtlMs: Type.Integer({ minimum: 1000, default: 15000, description: "a node's lease; the users of a node that dies are reported closed within about this long" }),
  handoffTimeoutMs: Type.Integer({ minimum: 1, default: 2000, description: 'longest a replace waits for the node that holds the old connection to close it' }),
  whenRedisDown: Enum(['accept', 'reject'], { default: 'accept', description: 'handshakes whose uniqueness cannot be checked while Redis is away: accept them, or refuse them with 503' })
}, { ...strict, default: {} })

export const Log = Type.Object({
  level: Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' })
}, { ...strict, default: {} })

/** Run-time pool members (docs/pools.md, "Joining at run time"); without it the admin routes do not exist. */
export const Admin = Type.Object({
  token: Type.String({ minLength: 16, description: 'the Bearer token of the /_gatehouse/pools routes; at least 16 characters' }),
  leaseMs: Type.Integer({ minimum: 300, default: 15000, description: 'a registration lasts this long unless its PUT is repeated' }),
  maxMembers: Type.Integer({ minimum: 1, default: 64, description: 'members registered at run time per endpoint; more are refused (409)' })
}, strict)

export const GatewayConfig = Type.Object({
  server: Server,
  admin: Type.Optional(Admin),
  auth: Auth,
  endpoints: Type.Array(Endpoint, { minItems: 1 }),
  limits: Limits,
  queue: Queue,
  cluster: Cluster,
  log: Log
}, strict)

export type GatewayConfig = Static<typeof GatewayConfig>
export type EndpointConfig = Static<typeof Endpoint>
export type BackendConfig = Static<typeof Backend>
export type PoolMemberConfig = Static<typeof PoolMember>
export type LimitsConfig = Static<typeof Limits>
export type QueueConfig = Static<typeof Queue>
export type AuthConfig = Static<typeof Auth>
export type IssuerConfig = Static<typeof Issuer>
export type ClusterConfig = Static<typeof Cluster>
export type AdminConfig = Static<typeof Admin>
export type TokenSource = Static<typeof TokenSource>
