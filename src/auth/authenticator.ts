/**
 * Verifies a handshake's JWT (with @fastify/jwt for static keys, fast-jwt for JWKS keys) and turns it into an identity.
 * Algorithms are pinned by config, per issuer, so `alg: none` and HS/RS
 * confusion fail the algorithm or signature checks. With `auth.issuers` the
 * token's `iss` picks the issuer whose keys and rules apply; a JWKS issuer's
 * keys come from src/auth/jwks.ts.
 */
import { KeyObject, type webcrypto } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import fastifyJwt, { type JWT } from '@fastify/jwt'
import { createDecoder, createVerifier, TokenError } from 'fast-jwt'
import type { CryptoKey } from 'jose'
import type { AuthConfig, IssuerConfig } from '../config/schema.js'
import type { GatewayMetrics, TokenCacheCounts } from '../metrics.js'
import { GW_ERR_KEYS_UNAVAILABLE, GW_ERR_TOKEN_EXPIRED, GW_ERR_TOKEN_INVALID, GW_ERR_TOKEN_MISSING } from '../errors.js'
import { JwksKeys, KeysUnavailable } from './jwks.js'
import { extractToken, type TokenCarrier } from './token-sources.js'
import { cachedVerify, VerifiedTokens } from './verified-tokens.js'

/**
 * The claims go into every `open` and `sync` through JSON.stringify, which
 * recurses: nested a few thousand deep (a 16 KB header holds that) it throws,
 * and the backend would get a `close` with no `open` (protocol/PROTOCOL.md §6).
 */
const MAX_CLAIMS_DEPTH = 64

export type Claims = Record<string, unknown>

export interface Identity {
  user: string
  claims: Claims
  /** Token expiry, epoch seconds, when the token has one. */
  exp?: number
}

export interface Authenticator {
  /**
   * Rejects with a GW_ERR_TOKEN_* error (HTTP 401) when the request carries no acceptable token, or
   * GW_ERR_KEYS_UNAVAILABLE (503) when the token's key is not held and cannot be fetched now.
   */
  authenticate (request: TokenCarrier): Promise<Identity>
}

type Verify = (token: string) => Claims | Promise<Claims>
/** One key's verifier: synchronous, as fast-jwt's is once the key is known. */
type KeyVerify = (token: string) => Claims

/** One issuer: where its keys come from and what its tokens must hold. */
type IssuerRules = Pick<IssuerConfig, 'secret' | 'publicKey' | 'jwksUrl' | 'algorithms' | 'audience'> & { issuer?: string | string[] }

const decodeComplete = createDecoder({ complete: true })
const decodePayload = createDecoder()

export async function registerAuthenticator (app: FastifyInstance, auth: Readonly<AuthConfig>, metrics: GatewayMetrics): Promise<Authenticator> {
  const sets: JwksKeys[] = []
  let namespaces = 0
  const counts: TokenCacheCounts = { hits: 0, misses: 0 }
  if (auth.verifyCacheSize > 0) metrics.readTokenCacheFrom(() => counts)
  const verifierOf = async (rules: Readonly<IssuerRules>): Promise<Verify> => {
    const remember = rememberer(auth, counts)
    if (rules.jwksUrl === undefined) return remember(await staticVerifier(app, `gatehouseIssuer${namespaces++}`, rules, checks(auth, rules)))
    const keys = new JwksKeys({
      url: rules.jwksUrl,
      algorithms: rules.algorithms,
      timeoutMs: auth.jwksTimeoutMs,
      cooldownMs: auth.jwksCooldownMs,
      refreshMs: auth.jwksRefreshMs,
      fetched: (jwks, result) => metrics.jwksFetches.inc({ jwks, result })
    }, app.log)
    sets.push(keys)
    return jwksVerifier(keys, checks(auth, rules), remember)
  }
  let issuers: Map<string, Verify> | undefined
  if (auth.issuers !== undefined) {
    issuers = new Map()
    // one after another: two @fastify/jwt registrations awaited at once leave the second's namespace unset when its await returns
    for (const entry of auth.issuers) issuers.set(entry.issuer, await verifierOf(entry))
  }
  const single = issuers === undefined ? await verifierOf(auth) : undefined
  app.addHook('onClose', async () => { for (const keys of sets) keys.close() })
  const claimPath = auth.userClaim.split('.')

  return {
    async authenticate (request) {
      const token = extractToken(request, auth.tokenSources)
      if (token === undefined) throw new GW_ERR_TOKEN_MISSING()
      let claims: Claims
      try {
        claims = await (single ?? pickIssuer(issuers as Map<string, Verify>, token))(token)
      } catch (err) {
        throw refusal(err)
      }
      const user = readClaim(claims, claimPath)
      if (user === undefined) throw new GW_ERR_TOKEN_INVALID(`no usable "${auth.userClaim}" claim (a non-empty string or a number)`)
      if (Buffer.byteLength(user) > auth.maxUserIdLength) throw new GW_ERR_TOKEN_INVALID(`the "${auth.userClaim}" claim is longer than ${auth.maxUserIdLength} bytes`)
      if (nestedDeeperThan(claims, MAX_CLAIMS_DEPTH)) throw new GW_ERR_TOKEN_INVALID(`claims nested deeper than ${MAX_CLAIMS_DEPTH} levels`)
      return { user, claims, exp: typeof claims.exp === 'number' ? claims.exp : undefined }
    }
  }
}

/** fast-jwt's verifier options for one issuer. */
function checks (auth: Readonly<AuthConfig>, rules: Readonly<IssuerRules>) {
  return {
    algorithms: [...rules.algorithms],
    allowedIss: rules.issuer === undefined ? undefined : [rules.issuer].flat(),
    allowedAud: rules.audience === undefined ? undefined : [rules.audience].flat(),
    // fast-jwt checks iss/aud/exp only when the token has them: configured means required
    requiredClaims: requiredClaims(auth, rules),
    clockTolerance: auth.clockToleranceSec * 1000
  }
}

/**
 * Puts one issuer's verified-token cache (verified-tokens.ts) in front of
 * each of its keys' verifiers, unless `auth.verifyCacheSize` is 0: one cache
 * per issuer, so keys rotated out leave nothing behind but entries that age out.
 */
function rememberer (auth: Readonly<AuthConfig>, counts: TokenCacheCounts): (verify: KeyVerify) => KeyVerify {
  if (auth.verifyCacheSize === 0) return (verify) => verify
  const cache = new VerifiedTokens<Claims>(auth.verifyCacheSize, auth.clockToleranceSec * 1000)
  return (verify) => cachedVerify(verify, cache, counts)
}

function requiredClaims (auth: Readonly<AuthConfig>, rules: Readonly<IssuerRules>): string[] {
  const claims: string[] = []
  if (rules.issuer !== undefined) claims.push('iss')
  if (rules.audience !== undefined) claims.push('aud')
  if (auth.requireExp) claims.push('exp')
  return claims
}

/**
 * A static secret or public key, through @fastify/jwt (one namespace per
 * issuer). Its app-level `verify` holds nothing of the request; a JWKS key
 * needs a lookup per token, which only its request decorator offers, and that
 * keeps each player's handshake alive for the life of its socket, so JWKS
 * keys go to fast-jwt (@fastify/jwt's engine) directly below.
 */
async function staticVerifier (app: FastifyInstance, namespace: string, rules: Readonly<IssuerRules>, verify: ReturnType<typeof checks>): Promise<KeyVerify> {
  await app.register(fastifyJwt, { namespace, secret: rules.secret ?? { public: rules.publicKey as string }, verify })
  const jwt = (app.jwt as unknown as Record<string, JWT>)[namespace]
  return (token) => jwt.verify<Claims>(token)
}

/** Verifiers a JWKS issuer keeps by key material: a set's keys, and those it lately rotated out. */
const MAX_JWKS_VERIFIERS = 64

/**
 * Verifies against the JWKS key the token's `kid` and `alg` name, with one
 * fast-jwt verifier per key (jose imports a key once per algorithm, so the
 * verifier is pinned to that one). Every fetch of the set makes new key
 * objects, unchanged keys included: their verifiers are found again by key
 * material and alg, as the issuer's cache serves a token only through the
 * verifier that accepted it; else a refresh (or a made-up `kid`, which
 * refetches) would cost every remembered token before a storm.
 */
function jwksVerifier (keys: JwksKeys, options: ReturnType<typeof checks>, remember: (verify: KeyVerify) => KeyVerify): Verify {
  const verifiers = new WeakMap<CryptoKey, KeyVerify>()
  const byMaterial = new Map<string, KeyVerify>()
  return async (token) => {
    const { header } = decodeComplete(token) as { header: { alg: unknown, kid?: unknown } }
    // before the key lookup, the one step that may wait for a fetch
    if (typeof header.alg !== 'string' || !(options.algorithms as string[]).includes(header.alg)) {
      throw new TokenError(TokenError.codes.invalidAlgorithm, 'The token algorithm is invalid.')
    }
    const key = await keys.key(header as { alg: string })
    let verify = verifiers.get(key)
    if (verify === undefined) {
      const pem = KeyObject.from(key as webcrypto.CryptoKey).export({ type: 'spki', format: 'pem' }) as string
      const material = `${header.alg}\n${pem}`
      verify = byMaterial.get(material) ?? remember(createVerifier({ key: pem, ...options, algorithms: [header.alg] as typeof options.algorithms }))
      byMaterial.delete(material)
      byMaterial.set(material, verify)
      // a key that left the set is never looked up again (keys.key refuses its kid first): it only ages out
      if (byMaterial.size > MAX_JWKS_VERIFIERS) byMaterial.delete(byMaterial.keys().next().value as string)
      verifiers.set(key, verify)
    }
    return verify(token)
  }
}

/** The issuer a token claims picks the keys and rules; verifying then requires that same `iss`. */
function pickIssuer (issuers: Map<string, Verify>, token: string): Verify {
  const { iss } = decodePayload(token) as Claims
  const verify = typeof iss === 'string' ? issuers.get(iss) : undefined
  if (verify === undefined) throw new GW_ERR_TOKEN_INVALID(iss === undefined ? 'no iss claim' : 'the token\'s issuer (iss) is not accepted')
  return verify
}

function refusal (err: unknown): Error {
  if (err instanceof GW_ERR_TOKEN_INVALID) return err
  if (err instanceof KeysUnavailable) return new GW_ERR_KEYS_UNAVAILABLE()
  if (err instanceof TokenError && err.code === TokenError.codes.expired) return new GW_ERR_TOKEN_EXPIRED()
  return new GW_ERR_TOKEN_INVALID(describe(err))
}

function readClaim (claims: Claims, path: string[]): string | undefined {
  let value: unknown = claims
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined
    value = (value as Record<string, unknown>)[key]
  }
  if (typeof value === 'string' && value !== '') return value
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return undefined
}

/** fast-jwt's and jwks.ts's messages say what failed (signature, iss, aud, nbf, key) and never echo the token. */
function describe (err: unknown): string {
  return err instanceof Error ? err.message : 'unverifiable'
}

/** Iterative, so the check itself cannot overflow the stack. */
function nestedDeeperThan (value: unknown, max: number): boolean {
  const pending: Array<{ value: unknown, depth: number }> = [{ value, depth: 0 }]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (next.value === null || typeof next.value !== 'object') continue
    if (next.depth >= max) return true
    for (const child of Object.values(next.value)) pending.push({ value: child, depth: next.depth + 1 })
  }
  return false
}
