/**
 * One issuer's JWKS (`auth.jwksUrl`, docs/configuration.md). jose's remote key
 * set fetches it (bounded by a timeout), caches it, joins concurrent fetches,
 * refetches for an unknown `kid` at most once per cooldown after a good fetch,
 * and only hands out a key whose type and `alg` fit the token's `alg`. Added
 * here: the cooldown also after a failed fetch (else every handshake of an
 * unknown `kid` would dial a dead server), a background refresh that never
 * drops the keys held when it fails, and the refusal statuses of
 * protocol/PROTOCOL.md §6.
 */
import type { FastifyBaseLogger } from 'fastify'
import { createRemoteJWKSet, customFetch, errors, type CryptoKey, type FetchImplementation, type JWSHeaderParameters } from 'jose'

export interface JwksOptions {
  url: string
  /** The algorithms the issuer is allowed: a set none of whose keys fits them is a failed fetch. */
  algorithms: readonly string[]
  timeoutMs: number
  cooldownMs: number
  refreshMs: number
  /** Counts every fetch of the set at `where` (its URL without the query) by what came of it. */
  fetched (where: string, result: JwksFetchResult): void
}

/** `ok`; `failed` (down, timed out, not a usable key set); `cooldown`: a handshake's fetch not made, within the cooldown of the last one. */
export type JwksFetchResult = 'ok' | 'failed' | 'cooldown'

/** The token's key is not among the keys held (after a fetch, or within the cooldown of one): 401. */
export class NoSuchKey extends Error {}

/** The token's key is not held and cannot be fetched now: 503, the token may well be good. */
export class KeysUnavailable extends Error {}

const KEY_TYPES: Record<string, string> = { RS: 'RSA', PS: 'RSA', ES: 'EC', Ed: 'OKP' }

export class JwksKeys {
  private readonly set: ReturnType<typeof createRemoteJWKSet>
  private readonly timer: NodeJS.Timeout
  private lastAttempt = -Infinity
  private refreshing = false
  /** For log lines: the URL without its query, which may hold an API key. */
  private readonly where: string

  constructor (private readonly options: JwksOptions, private readonly log: FastifyBaseLogger) {
    const url = new URL(options.url)
    this.where = url.origin + url.pathname
    this.set = createRemoteJWKSet(url, {
      timeoutDuration: options.timeoutMs,
      cooldownDuration: options.cooldownMs,
      // never stale: jose would refetch before every check and refuse everyone while the server is
      // down; freshness comes from the background refresh instead
      cacheMaxAge: Infinity,
      [customFetch]: this.fetchSet
    })
    this.refresh()
    this.timer = setInterval(() => { this.refresh() }, options.refreshMs).unref()
  }

  /** The public key for a token's header; throws NoSuchKey or KeysUnavailable. */
  async key (header: JWSHeaderParameters): Promise<CryptoKey> {
    try {
      return await this.set(header)
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey) throw new NoSuchKey('no key of the issuer matches the token\'s kid and alg')
      if (err instanceof errors.JWKSMultipleMatchingKeys) throw new NoSuchKey('the token has no kid and the issuer has several keys for its alg')
      if (err instanceof errors.JOSENotSupported) throw new NoSuchKey('the token\'s alg cannot be checked with a key set')
      throw new KeysUnavailable('cannot fetch the issuer\'s keys now')
    }
  }

  close (): void {
    clearInterval(this.timer)
  }

  /** A background fetch: not held back by the cooldown, and on failure the keys held stay. */
  private refresh (): void {
    this.refreshing = true
    const done = this.set.reload()
    this.refreshing = false
    done.catch(() => { /* fetchSet logged it */ })
  }

  /**
   * jose's fetch, gated and checked: one attempt per cooldown unless it is the
   * background refresh, and an answer that holds no usable key fails like a
   * server that is down, so that a broken deployment of the identity service
   * does not wipe the keys held. jose calls this synchronously from reload().
   */
  private readonly fetchSet: FetchImplementation = async (url, init) => {
    const now = Date.now()
    if (!this.refreshing && now - this.lastAttempt < this.options.cooldownMs) {
      this.options.fetched(this.where, 'cooldown')
      throw new KeysUnavailable('within the cooldown of the last fetch')
    }
    this.lastAttempt = now
    try {
      const response = await fetch(url, init)
      if (response.status !== 200) throw new KeysUnavailable(`answered HTTP ${response.status}`)
      const text = await response.text()
      this.checkSet(text)
      this.options.fetched(this.where, 'ok')
      return new Response(text, { status: 200, headers: { 'content-type': 'application/json' } })
    } catch (err) {
      this.options.fetched(this.where, 'failed')
      this.log.warn({ jwksUrl: this.where, problem: problem(err) }, 'JWKS fetch failed: the keys held (if any) stay in use')
      throw err
    }
  }

  private checkSet (text: string): void {
    let set: unknown
    try {
      set = JSON.parse(text)
    } catch {
      // JSON.parse's message quotes the body: not for the log
      throw new KeysUnavailable('the answer is not JSON')
    }
    const keys = (set as { keys?: unknown } | null)?.keys
    if (!Array.isArray(keys)) throw new KeysUnavailable('the answer is not a key set (no "keys" array)')
    const types = new Set(this.options.algorithms.map((alg) => KEY_TYPES[alg.slice(0, 2)]))
    const usable = keys.some((key) => key !== null && typeof key === 'object' && types.has((key as { kty?: string }).kty ?? '') &&
      ((key as { use?: string }).use ?? 'sig') === 'sig')
    if (!usable) throw new KeysUnavailable(`the key set holds no key for ${this.options.algorithms.join(', ')}`)
  }
}

/** What went wrong, for the log: never the answer's body nor any key. */
function problem (err: unknown): string {
  if (err instanceof KeysUnavailable) return err.message
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return 'timed out'
  const cause = (err as { cause?: { code?: string } } | undefined)?.cause
  return `unreachable${cause?.code ? ` (${cause.code})` : ''}`
}
