/**
 * Verifies a handshake's JWT with @fastify/jwt (fast-jwt underneath) and
 * turns it into an identity. Algorithms are pinned by config, so `alg: none`
 * and HS/RS confusion fail signature or algorithm checks.
 */
import type { FastifyInstance } from 'fastify'
import fastifyJwt from '@fastify/jwt'
import { TokenError } from 'fast-jwt'
import type { AuthConfig } from '../config/schema.js'
import { GW_ERR_TOKEN_EXPIRED, GW_ERR_TOKEN_INVALID, GW_ERR_TOKEN_MISSING } from '../errors.js'
import { extractToken, type TokenCarrier } from './token-sources.js'

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
  /** Throws a GW_ERR_TOKEN_* error (HTTP 401) when the request carries no acceptable token. */
  authenticate (request: TokenCarrier): Identity
}

export async function registerAuthenticator (app: FastifyInstance, auth: Readonly<AuthConfig>): Promise<Authenticator> {
  const key = auth.secret ?? { public: auth.publicKey as string }
  await app.register(fastifyJwt, {
    secret: key,
    verify: {
      algorithms: [...auth.algorithms],
      allowedIss: auth.issuer === undefined ? undefined : [auth.issuer].flat(),
      allowedAud: auth.audience === undefined ? undefined : [auth.audience].flat(),
      // fast-jwt checks iss/aud/exp only when the token has them: configured means required
      requiredClaims: requiredClaims(auth),
      clockTolerance: auth.clockToleranceSec * 1000
    }
  })
  const claimPath = auth.userClaim.split('.')

  return {
    authenticate (request) {
      const token = extractToken(request, auth.tokenSources)
      if (token === undefined) throw new GW_ERR_TOKEN_MISSING()
      let claims: Claims
      try {
        claims = app.jwt.verify<Claims>(token)
      } catch (err) {
        if (err instanceof TokenError && err.code === TokenError.codes.expired) throw new GW_ERR_TOKEN_EXPIRED()
        throw new GW_ERR_TOKEN_INVALID(describe(err))
      }
      const user = readClaim(claims, claimPath)
      if (user === undefined) throw new GW_ERR_TOKEN_INVALID(`no usable "${auth.userClaim}" claim (a non-empty string or a number)`)
      if (Buffer.byteLength(user) > auth.maxUserIdLength) throw new GW_ERR_TOKEN_INVALID(`the "${auth.userClaim}" claim is longer than ${auth.maxUserIdLength} bytes`)
      if (nestedDeeperThan(claims, MAX_CLAIMS_DEPTH)) throw new GW_ERR_TOKEN_INVALID(`claims nested deeper than ${MAX_CLAIMS_DEPTH} levels`)
      return { user, claims, exp: typeof claims.exp === 'number' ? claims.exp : undefined }
    }
  }
}

function requiredClaims (auth: Readonly<AuthConfig>): string[] {
  const claims: string[] = []
  if (auth.issuer !== undefined) claims.push('iss')
  if (auth.audience !== undefined) claims.push('aud')
  if (auth.requireExp) claims.push('exp')
  return claims
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

/** fast-jwt's messages say what failed (signature, iss, aud, nbf) and never echo the token. */
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
