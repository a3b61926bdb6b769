/**
 * One player's connection to one endpoint: its identity, its socket, and the
 * guarantee that its end is reported exactly once whatever ends it. A session
 * whose socket died may be held for a while (PROTOCOL.md §5b): frames for it
 * are kept, and a new socket of the same user resumes it. A live session
 * may also move to a new socket of the same user and params, with a fresh
 * token (a refresh, PROTOCOL.md §5d): the old socket is closed with 4410 and
 * read until it is gone, and frames for the player wait until then, so they
 * arrive in order.
 */
import type { WebSocket } from 'ws'
import { CloseCodes, messageHead, messagePrefix, truncateReason, type Params } from '../../protocol/index.js'
import type { Identity } from '../auth/authenticator.js'
import type { Connection } from '../domain.js'

/** What `deliver` did with a frame: sent, kept for a held session, refused for a slow client, or dropped for an ended one. */
export type DeliveryOutcome = 'sent' | 'kept' | 'slow' | 'gone'

/** How an endpoint's sessions behave; set once per endpoint. */
export interface SessionLimits {
  maxBufferedBytes: number
  /** Close with 4401 when the token's `exp` has passed. */
  enforceExpiry: boolean
  /** `auth.clockToleranceSec`: a token is expired only this long after `exp`. */
  clockToleranceSec: number
  /** `duplicate: "allow"`: each session is known to the backend by its connection id, `conn` on its events. */
  connIds: boolean
}

/** Told once when a session ends: by the client, by the gateway, or by its backend. */
export type EndListener = (session: ClientSession, code: number, reason: string) => void

/** Longest delay setTimeout accepts (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1
/** Longest a refresh waits for the old socket's close handshake before it terminates it (PROTOCOL.md §5d). */
const SWITCH_TIMEOUT_MS = 5000

interface Kept {
  payload: string | Buffer
  binary: boolean
}

export class ClientSession {
  readonly user: string
  /** The latest token's claims: a refresh or a resume with a new token replaces them. */
  claims: Record<string, unknown>
  /** Head of every `message` event of this client, built once. */
  readonly prefix: string
  /**
   * With `limits.connIds`: the id of the connection that opened the session,
   * `conn` on its events; a resume keeps it, so the backend sees one connection.
   */
  readonly conn?: string
  /** The cluster's record of this connection; a resume brings a new one. */
  connection: Connection
  private state: 'open' | 'held' | 'ended' = 'open'
  /** The socket attached now; a resume attaches a new one. */
  private attached: WebSocket
  /** During a refresh: the socket being left, still read until it closes. */
  private leaving?: WebSocket
  private switchTimer?: NodeJS.Timeout
  /** Told how many kept frames went out when the switch completed. */
  private onSwitched?: (flushed: number) => void
  private kept: Kept[] = []
  private keptBytes = 0
  private holdTimer?: NodeJS.Timeout
  private expiryTimer?: NodeJS.Timeout
  /** Cleared at each heartbeat; set again by the client's pong. */
  private alive = true
  /** `recordHead`, once built; null when it does not fit a record. */
  private head?: Buffer | null

  constructor (
    socket: WebSocket,
    identity: Identity,
    connection: Connection,
    private readonly limits: SessionLimits,
    private readonly onEnd: EndListener
  ) {
    this.attached = socket
    this.connection = connection
    this.user = identity.user
    this.claims = identity.claims
    if (limits.connIds) this.conn = connection.id
    this.prefix = messagePrefix(identity.user, connection.params, this.conn)
    this.watchPongs(socket)
  }

  get params (): Params {
    return this.connection.params
  }

  /**
   * The user and params fields of this client's MESSAGE and TEXT records
   * (PROTOCOL.md §2a), built on the first raw message, as `prefix` is for
   * JSON; undefined when they do not fit a record.
   */
  get recordHead (): Buffer | undefined {
    if (this.head === undefined) this.head = messageHead(this.user, this.params) ?? null
    return this.head ?? undefined
  }

  get socket (): WebSocket {
    return this.attached
  }

  /** The socket a refresh is leaving, while it closes. */
  get previousSocket (): WebSocket | undefined {
    return this.leaving
  }

  get isEnded (): boolean {
    return this.state === 'ended'
  }

  get isHeld (): boolean {
    return this.state === 'held'
  }

  /** Frames kept for a held session; when it ends unresumed, they are the undelivered ones. */
  get keptFrames (): number {
    return this.kept.length
  }

  /**
   * Writes one frame, unless the client already lags more than
   * `maxBufferedBytes` behind: then it is closed as a slow consumer instead
   * of growing memory. One frame larger than the bound still goes to a
   * client that keeps up. A held session keeps frames up to the same bound.
   */
  deliver (payload: string | Buffer, binary: boolean): DeliveryOutcome {
    if (this.state === 'ended') return 'gone'
    if (this.state === 'held' || this.leaving) {
      const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
      if (this.keptBytes + size > this.limits.maxBufferedBytes) {
        if (this.leaving) {
          // the old socket is too slow to finish: the player gets the rest on the new one now
          this.switched()
          return this.deliver(payload, binary)
        }
        this.end(CloseCodes.ABNORMAL.code, CloseCodes.ABNORMAL.reason)
        return 'gone'
      }
      this.kept.push({ payload, binary })
      this.keptBytes += size
      return 'kept'
    }
    if (this.attached.bufferedAmount > this.limits.maxBufferedBytes) {
      this.close(CloseCodes.SLOW_CONSUMER)
      return 'slow'
    }
    this.attached.send(payload, { binary })
    return 'sent'
  }

  /** Keeps the session after its socket died; `expire` runs if nobody resumes it within `graceMs`. */
  hold (graceMs: number, expire: () => void): void {
    if (this.state !== 'open') return
    this.stopSwitch()
    this.state = 'held'
    this.holdTimer = setTimeout(expire, graceMs)
    this.holdTimer.unref()
  }

  /**
   * A new socket of the same user takes over, with the cluster's record of it
   * and its token's `exp`; kept frames go out first. Returns how many.
   */
  resume (socket: WebSocket, connection: Connection, identity: Identity): number {
    clearTimeout(this.holdTimer)
    this.state = 'open'
    this.attached = socket
    this.connection = connection
    this.claims = identity.claims
    this.alive = true
    this.watchPongs(socket)
    const kept = this.kept
    this.kept = []
    this.keptBytes = 0
    for (const frame of kept) this.deliver(frame.payload, frame.binary)
    this.expireAt(identity.exp)
    return kept.length
  }

  /**
   * A refresh: `socket` (same user and params, a new token) takes over the
   * live session. The old socket is closed with 4410; frames for the player
   * are kept, and the new socket is not read, until the old one is gone
   * (`switched`, which tells `onSwitched` how many kept frames it sent), so
   * nothing is lost and both ways stay in order.
   */
  refresh (socket: WebSocket, connection: Connection, identity: Identity, onSwitched: (flushed: number) => void): void {
    if (this.state !== 'open') return
    // a refresh while the previous one is still switching: that one ends now
    this.switched()
    const old = this.attached
    this.leaving = old
    this.onSwitched = onSwitched
    this.attached = socket
    this.connection = connection
    this.claims = identity.claims
    this.alive = true
    this.watchPongs(socket)
    socket.pause()
    this.switchTimer = setTimeout(() => this.switched(), SWITCH_TIMEOUT_MS)
    this.switchTimer.unref()
    old.close(CloseCodes.REFRESHED.code, CloseCodes.REFRESHED.reason)
    this.expireAt(identity.exp)
  }

  /** The old socket of a refresh is gone (or took too long: it is cut): the new one is read, and kept frames go out. */
  switched (): void {
    const old = this.leaving
    if (old === undefined) return
    this.stopSwitch()
    if (old.readyState !== old.CLOSED) old.terminate()
    const kept = this.kept
    this.kept = []
    this.keptBytes = 0
    for (const frame of kept) this.deliver(frame.payload, frame.binary)
    this.onSwitched?.(kept.length)
  }

  /**
   * One heartbeat: pings the client, or returns false (and sends nothing)
   * when it never answered the previous ping.
   */
  heartbeat (): boolean {
    // mid-refresh the new socket is not read, pongs included; its handshake just proved it alive
    if (this.leaving) return true
    if (!this.alive) return false
    this.alive = false
    this.attached.ping()
    return true
  }

  /**
   * Closes with 4401 once `exp` (plus the clock tolerance) has passed, when
   * the endpoint enforces expiry; replaces any earlier deadline. Far-off
   * expiries re-arm, past setTimeout's longest delay.
   */
  expireAt (exp: number | undefined): void {
    clearTimeout(this.expiryTimer)
    if (!this.limits.enforceExpiry || exp === undefined || this.state === 'ended') return
    const deadline = (exp + this.limits.clockToleranceSec) * 1000
    const delay = Math.max(0, deadline - Date.now())
    this.expiryTimer = setTimeout(() => {
      if (Date.now() >= deadline) this.close(CloseCodes.TOKEN_EXPIRED)
      else this.expireAt(exp)
    }, Math.min(delay, MAX_TIMER_MS))
    this.expiryTimer.unref()
  }

  /** Reports the end with the gateway's code, then sends the close frame. */
  close ({ code, reason }: { code: number, reason: string }): void {
    // mid-refresh: the held frames go out before the close frame, not dropped with the switch
    this.switched()
    const why = truncateReason(reason)
    this.end(code, why)
    this.attached.close(code, why)
  }

  /** Reports the end once; later calls (the socket's own close event, say) are no-ops. */
  end (code: number, reason: string): void {
    if (this.state === 'ended') return
    this.stopSwitch()
    clearTimeout(this.holdTimer)
    clearTimeout(this.expiryTimer)
    this.state = 'ended'
    this.onEnd(this, code, reason)
  }

  /** Forgets a refresh's old socket (it is closing anyway) without flushing. */
  private stopSwitch (): void {
    if (this.leaving === undefined) return
    clearTimeout(this.switchTimer)
    this.leaving = undefined
    // read again, so that a close handshake on it can finish
    this.attached.resume()
  }

  /** Any pong counts, from a socket since replaced by a resume too. */
  private watchPongs (socket: WebSocket): void {
    socket.on('pong', () => { this.alive = true })
  }
}
