/**
 * A service's registration in a gateway's pool at run time (docs/pools.md,
 * "Joining at run time"; docs/backend-sdk.md): PUT once, then again every
 * `leaseMs / 3` of the gateway's answer, until `stop()`, which DELETEs.
 * Failures are logged (never the admin token) and retried with backoff, so
 * a gateway that starts later, or restarts, gets the member back.
 */
import type { BackendLogger } from './logger.js'

export interface RegisterOptions {
  /** The gateway's HTTP base URL, e.g. `http://gateway:8080`. */
  gateway: string
  /** The endpoint (its `name`) whose pool this service joins. */
  endpoint: string
  /** This member's id in the pool: in `hello`, logs and metrics. */
  id: string
  /** Where the gateway dials this service: its `listen()` URL as the gateway can reach it. */
  url: string
  /** Share of new keys relative to the other members. @default 1 */
  weight?: number
  /** The gateway's `admin.token`. */
  adminToken: string
}

/** First retry delay after a failed PUT; doubles per failure, with jitter, up to `MAX_RETRY_MS` (and a third of the lease). */
const MIN_RETRY_MS = 250
const MAX_RETRY_MS = 10000
/** Longest one request may take. */
const REQUEST_TIMEOUT_MS = 5000

export class Registration {
  /** The lease of the gateway's last answer; undefined until one succeeded. */
  leaseMs?: number
  private timer?: NodeJS.Timeout
  private failures = 0
  private stopped = false
  private inFlight: Promise<void> = Promise.resolve()
  private readonly memberUrl: string
  private readonly where: { gateway: string, endpoint: string, id: string }
  private firstSuccess!: () => void
  /** Resolves once the gateway has taken the registration the first time. */
  readonly registered = new Promise<void>((resolve) => { this.firstSuccess = resolve })

  constructor (private readonly options: Readonly<RegisterOptions>, private readonly log: BackendLogger) {
    const base = new URL(options.gateway)
    this.memberUrl = new URL(`/_gatehouse/pools/${encodeURIComponent(options.endpoint)}/members/${encodeURIComponent(options.id)}`, base).href
    this.where = { gateway: base.origin, endpoint: options.endpoint, id: options.id }
  }

  start (): void {
    this.renew()
  }

  /** Stops renewing and ends the lease (DELETE, once): the gateway moves this member's keys to the others. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    clearTimeout(this.timer)
    await this.inFlight
    try {
      const res = await this.request('DELETE')
      if (res.status !== 204 && res.status !== 404) this.log.warn({ ...this.where, status: res.status, code: await codeOf(res) }, 'pool deregistration refused; the lease ends on its own')
    } catch (err) {
      this.log.warn({ ...this.where, err: (err as Error).message }, 'pool deregistration failed; the lease ends on its own')
    }
  }

  private renew (): void {
    if (this.stopped) return
    this.inFlight = this.put().then((delay) => {
      if (this.stopped) return
      this.timer = setTimeout(() => this.renew(), delay)
      this.timer.unref()
    })
  }

  /** One PUT; the delay until the next. */
  private async put (): Promise<number> {
    const { url, weight = 1 } = this.options
    try {
      const res = await this.request('PUT', JSON.stringify({ url, weight }))
      const leaseMs = res.status === 200 || res.status === 201 ? leaseOf(await res.json()) : undefined
      if (leaseMs !== undefined) {
        if (this.failures > 0 || this.leaseMs === undefined) this.log.info({ ...this.where, leaseMs }, 'registered in the gateway pool')
        this.leaseMs = leaseMs
        this.failures = 0
        this.firstSuccess()
        return Math.floor(leaseMs / 3)
      }
      if (res.ok) this.log.warn({ ...this.where, status: res.status }, 'pool registration refused: the answer has no leaseMs a gateway gives (a number of at least 300); retrying')
      else this.log.warn({ ...this.where, status: res.status, code: await codeOf(res) }, 'pool registration refused; retrying')
    } catch (err) {
      this.log.warn({ ...this.where, err: (err as Error).message }, 'pool registration failed; retrying')
    }
    this.failures++
    const cap = Math.min(MAX_RETRY_MS, this.leaseMs === undefined ? MAX_RETRY_MS : Math.floor(this.leaseMs / 3))
    const backoff = Math.min(cap, MIN_RETRY_MS * 2 ** (this.failures - 1))
    return backoff / 2 + Math.random() * backoff / 2
  }

  private async request (method: 'PUT' | 'DELETE', body?: string): Promise<Response> {
    return await fetch(this.memberUrl, {
      method,
      headers: { authorization: `Bearer ${this.options.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
    })
  }
}

/** The smallest `admin.leaseMs` a gateway takes (docs/configuration.md). */
const MIN_LEASE_MS = 300

/**
 * The lease of a registration's answer, or undefined when it has none a
 * gateway gives: renewing every `leaseMs / 3` of a missing or zero one
 * would PUT in a loop.
 */
function leaseOf (answer: unknown): number | undefined {
  const leaseMs = (answer as { leaseMs?: unknown } | null)?.leaseMs
  return typeof leaseMs === 'number' && Number.isFinite(leaseMs) && leaseMs >= MIN_LEASE_MS ? leaseMs : undefined
}

/** The gateway's error code from a refusal's body, for the log. */
async function codeOf (res: Response): Promise<string | undefined> {
  try {
    return ((await res.json()) as { code?: string }).code
  } catch {
    return undefined
  }
}
