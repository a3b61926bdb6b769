/**
 * Verifies a handshake's JWT with @fastify/jwt (fast-jwt underneath) and turns
 * it into an identity. Each issuer is one @fastify/jwt namespace, checked with
 * `request.<namespace>JwtVerify()`: its algorithms are pinned by config, so
 * `alg: none` and HS/RS confusion fail the algorithm or signature checks. With
 * `auth.issuers` the token's `iss` picks the issuer whose keys and rules apply.
 * A JWKS issuer's secret is a function that hands over the key of
 * src/auth/jwks.ts fitting the token's `kid` and `alg`; @fastify/jwt keeps one
 * verifier per key it returns, so no handshake builds a verifier.
 */
import { KeyObject, type webcrypto } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fastifyJwt, { type FastifyJWTOptions, type JwtVerifyFunction, type TokenOrHeader } from '@fastify/jwt'
import { createDecoder, TokenError } from 'fast-jwt'
import type { CryptoKey, JWSHeaderParameters } from 'jose'
import type { AuthConfig, IssuerConfig } from '../config/schema.js'
import { GW_ERR_KEYS_UNAVAILABLE, GW_ERR_TOKEN_EXPIRED, GW_ERR_TOKEN_INVALID, GW_ERR_TOKEN_MISSING } from '../errors.js'
import { JwksKeys, KeysUnavailable } from './jwks.js'
import { extractToken } from './token-sources.js'

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
  authenticate (request: FastifyRequest): Promise<Identity>
}

/** The name of the request decorator that verifies with one issuer's namespace. */
type VerifierName = string

/** One issuer: where its keys come from and what its tokens must hold. */
type IssuerRules = Pick<IssuerConfig, 'secret' | 'publicKey' | 'jwksUrl' | 'algorithms' | 'audience'> & { issuer?: string | string[] }

const decodePayload = createDecoder()

/** Refusals keep fast-jwt's own words (what failed, never the token) rather than @fastify/jwt's prefixed ones. */
const MESSAGES: FastifyJWTOptions['messages'] = {
  authorizationTokenInvalid: (err) => err.message,
  authorizationTokenUnsigned: 'The token signature is missing.'
}

export async function registerAuthenticator (app: FastifyInstance, auth: Readonly<AuthConfig>): Promise<Authenticator> {
  const sets: JwksKeys[] = []
  const extract = (request: FastifyRequest): string | undefined => extractToken(request, auth.tokenSources)
  let registered = 0
  const register = async (rules: Readonly<IssuerRules>): Promise<VerifierName> => {
    const namespace = `gatehouseIssuer${registered++}`
    await app.register(fastifyJwt, {
      namespace,
      secret: rules.jwksUrl === undefined ? rules.secret ?? { public: rules.publicKey as string } : jwksSecret(jwksOf(rules), rules.algorithms),
      // the secret function reads the token's header
      decode: { complete: true },
      verify: { ...checks(auth, rules), extractToken: extract },
      messages: MESSAGES
    })
    return `${namespace}JwtVerify`
  }
  const jwksOf = (rules: Readonly<IssuerRules>): JwksKeys => {
    const keys = new JwksKeys({
      url: rules.jwksUrl as string,
      algorithms: rules.algorithms,
      timeoutMs: auth.jwksTimeoutMs,
      cooldownMs: auth.jwksCooldownMs,
      refreshMs: auth.jwksRefreshMs
    }, app.log)
    sets.push(keys)
    return keys
  }
  let issuers: Map<string, VerifierName> | undefined
  let single: VerifierName | undefined
  if (auth.issuers === undefined) single = await register(auth)
  else {
    issuers = new Map()
    for (const entry of auth.issuers) issuers.set(entry.issuer, await register(entry))
  }
  app.addHook('onClose', async () => { for (const keys of sets) keys.close() })
  const claimPath = auth.userClaim.split('.')

  return {
    async authenticate (request) {
      const token = extract(request)
      if (token === undefined) throw new GW_ERR_TOKEN_MISSING()
      let claims: Claims
      try {
        const verifier = single ?? pickIssuer(issuers as Map<string, VerifierName>, token)
        // called without options, so @fastify/jwt uses its verifiers built once (per key for JWKS)
        claims = await (request as unknown as Record<VerifierName, JwtVerifyFunction>)[verifier]<Claims>()
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

function requiredClaims (auth: Readonly<AuthConfig>, rules: Readonly<IssuerRules>): string[] {
  const claims: string[] = []
  if (rules.issuer !== undefined) claims.push('iss')
  if (rules.audience !== undefined) claims.push('aud')
  if (auth.requireExp) claims.push('exp')
  return claims
}

/**
 * A JWKS issuer's @fastify/jwt secret: the PEM of the key the token's `kid`
 * and `alg` name. The same key always yields the same PEM string, which
 * @fastify/jwt caches its verifier by (a string: it caches none for a Buffer).
 */
function jwksSecret (keys: JwksKeys, algorithms: readonly string[]) {
  const pems = new WeakMap<CryptoKey, string>()
  return async (_request: FastifyRequest, decoded: TokenOrHeader): Promise<string> => {
    const { header } = decoded as { header: { alg?: unknown } }
    // before the key lookup, the one step that may wait for a fetch
    if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) {
      throw new TokenError(TokenError.codes.invalidAlgorithm, 'The token algorithm is invalid.')
    }
    const key = await keys.key(header as JWSHeaderParameters)
    let pem = pems.get(key)
    if (pem === undefined) {
      pem = KeyObject.from(key as webcrypto.CryptoKey).export({ type: 'spki', format: 'pem' }) as string
      pems.set(key, pem)
    }
    return pem
  }
}

/** The issuer a token claims picks the keys and rules; verifying then requires that same `iss`. */
function pickIssuer (issuers: Map<string, VerifierName>, token: string): VerifierName {
  const { iss } = decodePayload(token) as Claims
  const verifier = typeof iss === 'string' ? issuers.get(iss) : undefined
  if (verifier === undefined) throw new GW_ERR_TOKEN_INVALID(iss === undefined ? 'no iss claim' : 'the token\'s issuer (iss) is not accepted')
  return verifier
}

function refusal (err: unknown): Error {
  if (err instanceof GW_ERR_TOKEN_INVALID) return err
  if (err instanceof KeysUnavailable) return new GW_ERR_KEYS_UNAVAILABLE()
  if ((err as { code?: unknown } | null)?.code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED') return new GW_ERR_TOKEN_EXPIRED()
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

/** fast-jwt's (kept by MESSAGES) and jwks.ts's messages say what failed (signature, iss, aud, nbf, key) and never echo the token. */
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
