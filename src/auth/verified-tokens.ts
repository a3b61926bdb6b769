/**
 * Tokens one issuer's keys verified lately (`auth.verifyCacheSize`, docs/configuration.md),
 * so a client reconnecting with the token it had is not verified again: what
 * a reconnect storm is made of. Keyed by the whole token, so a hit is the very
 * string that was verified, and looked up with no hashing of ours (fast-jwt's
 * own cache hashes every token with SHA-256, twice on a miss, which for HS256
 * costs about what verifying does). Bounded by count and by token length;
 * an entry serves only between the token's `nbf` and `exp` (with the clock
 * tolerance) and for at most MAX_AGE_MS; refusals are never kept.
 */
import type { TokenCacheCounts } from '../metrics.js'

/** Longest life of an entry (fast-jwt's default for its own cache). */
export const MAX_AGE_MS = 10 * 60 * 1000
/** Longer tokens are verified every time, so the cache holds at most capacity × this many characters of tokens. */
export const MAX_CACHED_TOKEN_CHARS = 4096

/** A verified token's claims, as the verifier returned them. */
type Claims = Record<string, unknown>

interface Entry<T extends Claims> {
  claims: T
  /** The verifier that accepted the token: only through it is the entry served. */
  by: object
  /** Epoch ms from which, and until which, the entry may serve. */
  from: number
  until: number
}

export class VerifiedTokens<T extends Claims> {
  /** In use order, least recent first. */
  private readonly entries = new Map<string, Entry<T>>()

  constructor (private readonly capacity: number, private readonly toleranceMs: number) {}

  /** Tokens held now (for checks of the bound). */
  get size (): number {
    return this.entries.size
  }

  /** The claims `token` was verified with by `by`, while it is still valid. */
  get (token: string, by: object, now = Date.now()): T | undefined {
    const entry = this.entries.get(token)
    if (entry === undefined) return undefined
    this.entries.delete(token)
    if (entry.by !== by || now < entry.from || now > entry.until) return undefined
    this.entries.set(token, entry)
    return entry.claims
  }

  /** Remembers a token `by` just verified, with `claims`. */
  add (token: string, claims: T, by: object, now = Date.now()): void {
    if (token.length > MAX_CACHED_TOKEN_CHARS) return
    const { nbf, exp } = claims
    const from = typeof nbf === 'number' ? nbf * 1000 - this.toleranceMs : 0
    const until = Math.min(now + MAX_AGE_MS, typeof exp === 'number' ? exp * 1000 + this.toleranceMs : Infinity)
    this.entries.delete(token)
    this.entries.set(token, { claims, by, from, until })
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string)
  }
}

/**
 * `verify`, answered from `cache` while it can be; each answer counted in
 * `counts`. Several verifiers may share one cache (one issuer's JWKS keys):
 * a token is served only through the verifier that accepted it.
 */
export function cachedVerify<T extends Claims> (verify: (token: string) => T, cache: VerifiedTokens<T>, counts: TokenCacheCounts): (token: string) => T {
  return (token) => {
    const hit = cache.get(token, verify)
    if (hit !== undefined) {
      counts.hits++
      return hit
    }
    counts.misses++
    const claims = verify(token)
    cache.add(token, claims, verify)
    return claims
  }
}
