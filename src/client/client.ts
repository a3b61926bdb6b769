/**
 * A player's connection to one Gatehouse endpoint (docs/client.md): the token
 * as the `bearer` subprotocol, a fresh one on every attempt, reconnects with
 * jittered backoff as the close-code table says, and a bounded outbox while
 * the socket is down. Ahead of the token's `exp` it refreshes: a new socket
 * with a new token and `?refresh=1` opens before the old one is closed by the
 * gateway (PROTOCOL.md §5d), so the session goes on and nothing is lost.
 */
import { backoffMs, retryAfterClose } from './close-policy.js'

export interface GatehouseClientOptions {
  /** Called before every attempt: return a fresh JWT (from your auth service). */
  token: () => string | Promise<string>
  /** The first retry's delay, before jitter (default 500 ms). */
  minDelayMs?: number
  /** The longest delay between attempts (default 15 s). */
  maxDelayMs?: number
  /** The least wait after the gateway asks to slow down: 1008 rate or queue limit, 1013 (default 5 s). */
  pauseMs?: number
  /** Attempts in a row that never open before the client gives up (default 6; `Infinity` never gives up). */
  maxFailedAttempts?: number
  /** Messages kept while the socket is down, sent on open; past it `send` returns false (default 100). */
  outboxLimit?: number
  /**
   * Refresh this long before the token's `exp` (read from the JWT, not
   * verified): `token()` is called and a new socket replaces the open one
   * without a close for the backend. At most half the token's lifetime at
   * open; a failed refresh is tried again at the backoff until `exp`.
   * 0 turns refreshing off (default 10 s).
   */
  refreshAheadMs?: number
  /**
   * After a refresh's new socket opens, how long the old one may stay open
   * before this client closes it (1000) and ignores it: the gateway closes
   * it (4410) sooner, except on `duplicate: "allow"` endpoints, which never
   * move a session (PROTOCOL.md §5d) (default 10 s).
   */
  refreshGraceMs?: number
  /** Another WebSocket implementation (default: the global one). */
  WebSocket?: typeof WebSocket
}

export type ClientState = 'connecting' | 'open' | 'waiting' | 'closed'

export interface ClosedEvent {
  /** The close code (1006 when the socket never opened: a browser does not show the handshake's HTTP status), 0 when `token()` failed. */
  code: number
  reason: string
  /** Whether this socket had opened. */
  opened: boolean
  /** The decision: another attempt follows after `delayMs`, or this client is done. */
  retry: boolean
  delayMs: number
  /** Messages still in the outbox; when `retry` is false they are discarded. */
  unsent: number
}

export interface ClientEvents {
  connecting: { attempt: number }
  open: { attempt: number }
  message: { data: string | ArrayBuffer }
  /** 4409: the same user connected again elsewhere (another tab); no retry follows. */
  replaced: { reason: string }
  /** The connection moved to a socket with a new token (PROTOCOL.md §5d); `exp` is the new token's, in epoch seconds. */
  refreshed: { exp?: number }
  closed: ClosedEvent
}

type Listener<K extends keyof ClientEvents> = (event: ClientEvents[K]) => void
/** `WebSocket.OPEN`, the same in browsers and in `ws`. */
const OPEN = 1
/** setTimeout's longest delay (2^31 - 1 ms, about 24.8 days); a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1
type Outgoing = string | ArrayBufferLike | ArrayBufferView

export class GatehouseClient {
  private readonly options: Required<Omit<GatehouseClientOptions, 'WebSocket'>> & { WebSocket: typeof WebSocket }
  private readonly listeners = new Map<keyof ClientEvents, Set<Listener<any>>>()
  private readonly outbox: Outgoing[] = []
  private socket: WebSocket | undefined
  private timer: ReturnType<typeof setTimeout> | undefined
  private attempt = 0
  /** Closes since the last open: drives the backoff. */
  private failures = 0
  /** Attempts in a row that never opened: drives the give-up. */
  private unopened = 0
  private current: ClientState = 'connecting'
  /** The next refresh, and the socket of one under way. */
  private refreshTimer: ReturnType<typeof setTimeout> | undefined
  private refreshing: WebSocket | undefined
  private refreshFailures = 0
  /**
   * The sockets refreshes left, each until the gateway closes it or its
   * `refreshGraceMs` passes: not cut short by the next refresh, since what the
   * gateway still delivers there comes before its 4410.
   */
  private readonly leaving = new Map<WebSocket, ReturnType<typeof setTimeout>>()

  constructor (readonly url: string | URL, options: GatehouseClientOptions) {
    this.options = {
      minDelayMs: 500,
      maxDelayMs: 15000,
      pauseMs: 5000,
      maxFailedAttempts: 6,
      outboxLimit: 100,
      refreshAheadMs: 10000,
      refreshGraceMs: 10000,
      WebSocket: globalThis.WebSocket,
      ...options
    }
    // first attempt after the constructor returns, so listeners added now see its events
    this.schedule(0)
  }

  get state (): ClientState {
    return this.current
  }

  on<K extends keyof ClientEvents>(type: K, listener: Listener<K>): () => void {
    let set = this.listeners.get(type)
    if (!set) this.listeners.set(type, set = new Set())
    set.add(listener)
    return () => set.delete(listener)
  }

  /**
   * Sends now, or keeps the message for the next open; false when the outbox
   * is full or the client is closed. A socket already closing (the gateway's
   * close frame is in, say a refresh's 4410) would drop it silently: kept.
   */
  send (data: Outgoing): boolean {
    if (this.current === 'open' && this.socket?.readyState === OPEN) {
      this.socket.send(data)
      return true
    }
    if (this.current === 'closed' || this.outbox.length >= this.options.outboxLimit) return false
    this.outbox.push(data)
    return true
  }

  sendJson (value: unknown): boolean {
    return this.send(JSON.stringify(value))
  }

  /** Ends for good: no retry; queued messages are discarded (reported in `closed`). */
  close (code = 1000, reason = ''): void {
    if (this.current === 'closed') return
    const socket = this.socket
    this.finish({ code, reason, opened: this.current === 'open', retry: false, delayMs: 0, unsent: this.outbox.length })
    socket?.close(code, reason)
  }

  /** Refreshes now (a new token on a new socket, PROTOCOL.md §5d), if the client is open and no refresh is under way. */
  refresh (): void {
    if (this.current !== 'open' || this.refreshing !== undefined) return
    clearTimeout(this.refreshTimer)
    this.refreshTimer = undefined
    this.startRefresh().catch(() => this.refreshFailed())
  }

  /** Starts again after the client gave up or was closed, from a fresh backoff. */
  reconnect (): void {
    if (this.current !== 'closed') return
    this.failures = 0
    this.unopened = 0
    this.current = 'connecting'
    this.schedule(0)
  }

  private schedule (delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.dial().catch((err: unknown) => this.afterClose(0, `token() failed: ${(err as Error)?.message ?? String(err)}`, false))
    }, delayMs)
  }

  private async dial (): Promise<void> {
    this.current = 'connecting'
    const attempt = ++this.attempt
    this.emit('connecting', { attempt })
    const token = await this.options.token()
    if (this.current !== 'connecting' || attempt !== this.attempt) return // closed while the token came
    const socket = new this.options.WebSocket(this.url, ['bearer', token])
    socket.binaryType = 'arraybuffer'
    this.socket = socket
    let opened = false
    socket.onopen = () => {
      opened = true
      this.failures = 0
      this.unopened = 0
      this.current = 'open'
      this.emit('open', { attempt })
      // the outbox may refill from inside a listener; send what was queued before
      for (const data of this.outbox.splice(0)) socket.send(data)
      this.scheduleRefresh(token)
    }
    this.watch(socket, () => opened)
  }

  /**
   * Frames of `socket` are the player's until it closes (a refresh's old
   * socket too); only the current socket's close matters. A 4410 while a
   * refresh is under way is that refresh taking over: its socket's open may
   * reach the page after the old socket's close, and sends wait in the
   * outbox meanwhile.
   */
  private watch (socket: WebSocket, opened: () => boolean): void {
    socket.onmessage = (event: MessageEvent<string | ArrayBuffer>) => this.emit('message', { data: event.data })
    // every error is followed by a close, which decides (and `ws` in Node throws on an error nobody listens to)
    socket.onerror = () => {}
    socket.onclose = (event) => {
      clearTimeout(this.leaving.get(socket))
      this.leaving.delete(socket)
      if (this.socket !== socket) return
      this.socket = undefined
      if (event.code === 4410 && this.refreshing !== undefined) return
      this.abandonRefresh()
      this.afterClose(event.code, event.reason, opened())
    }
  }

  /** Plans the next refresh from `token`'s `exp`: `refreshAheadMs` before it, at most half its remaining life from now. */
  private scheduleRefresh (token: string): void {
    clearTimeout(this.refreshTimer)
    this.refreshTimer = undefined
    const exp = expiryOf(token)
    if (this.options.refreshAheadMs <= 0 || exp === undefined) return
    const left = exp * 1000 - Date.now()
    if (left <= 0) return
    const delay = Math.max(left - this.options.refreshAheadMs, left / 2)
    // setTimeout fires at once past its longest delay: a far-off refresh is planned again later
    this.refreshTimer = delay > MAX_TIMER_MS
      ? setTimeout(() => this.scheduleRefresh(token), MAX_TIMER_MS)
      : setTimeout(() => this.refresh(), delay)
  }

  /**
   * Make before break: the new socket opens while the old one still works;
   * once it is open, sends go to it, and the gateway closes the old one
   * (4410) after what it had to deliver there.
   */
  private async startRefresh (): Promise<void> {
    const token = await this.options.token()
    if (this.current !== 'open' || this.refreshing !== undefined) return
    // relative to the page, as a browser's WebSocket takes it
    const url = new URL(String(this.url), (globalThis as { location?: { href: string } }).location?.href)
    url.searchParams.set('refresh', '1')
    const fresh = new this.options.WebSocket(url, ['bearer', token])
    fresh.binaryType = 'arraybuffer'
    this.refreshing = fresh
    fresh.onerror = () => {}
    fresh.onopen = () => {
      if (this.refreshing !== fresh) return
      this.refreshing = undefined
      this.refreshFailures = 0
      const old = this.socket
      this.socket = fresh
      if (old !== undefined) this.letGo(old)
      this.watch(fresh, () => true)
      // what was sent while the old socket had already closed (4410) and this one was not yet open
      for (const data of this.outbox.splice(0)) fresh.send(data)
      this.emit('refreshed', { exp: expiryOf(token) })
      this.scheduleRefresh(token)
    }
    fresh.onclose = (event) => {
      if (this.refreshing !== fresh) return
      this.refreshing = undefined
      // the old socket already gave way to this one: the connection is lost, reconnect as after any drop
      if (this.socket === undefined) this.afterClose(event.code === 4410 ? 1006 : event.code, event.reason, true)
      else this.refreshFailed()
    }
  }

  /** The old socket still works: try again at the backoff, while it is open. */
  private refreshFailed (): void {
    if (this.current !== 'open') return
    const delay = backoffMs(this.refreshFailures++, this.options.minDelayMs, this.options.maxDelayMs)
    clearTimeout(this.refreshTimer)
    this.refreshTimer = setTimeout(() => this.refresh(), delay)
  }

  /** Waits `refreshGraceMs` for the gateway to close a refresh's old socket, then closes it here. */
  private letGo (old: WebSocket): void {
    this.leaving.set(old, setTimeout(() => this.dropLeaving(old), this.options.refreshGraceMs))
  }

  /** Closes the socket a refresh left, if still open (the gateway kept it: `duplicate: "allow"`), and ignores what else it gets. */
  private dropLeaving (socket: WebSocket): void {
    if (!this.leaving.has(socket)) return
    clearTimeout(this.leaving.get(socket))
    this.leaving.delete(socket)
    if (socket.readyState !== OPEN) return
    socket.onmessage = null
    socket.close(1000)
  }

  /** The connection ended: a refresh under way has nothing left to take over. */
  private abandonRefresh (): void {
    clearTimeout(this.refreshTimer)
    this.refreshTimer = undefined
    const fresh = this.refreshing
    this.refreshing = undefined
    if (fresh !== undefined) {
      fresh.onopen = null
      fresh.onclose = null
      fresh.close(1000)
    }
  }

  private afterClose (code: number, reason: string, opened: boolean): void {
    if (this.current === 'closed') return
    const kind = retryAfterClose(code, reason)
    if (code === 4409) this.emit('replaced', { reason })
    this.failures++
    if (!opened) this.unopened++
    // a socket that never opened may be a refused handshake (401, 403, 404, 409, 503): a browser
    // cannot tell which, so such attempts are retried only so many times in a row
    const gaveUp = this.unopened >= this.options.maxFailedAttempts
    if (kind === 'never' || gaveUp) {
      this.finish({ code, reason, opened, retry: false, delayMs: 0, unsent: this.outbox.length })
      return
    }
    const { minDelayMs, maxDelayMs, pauseMs } = this.options
    const backoff = backoffMs(kind === 'now' ? 0 : this.failures - 1, minDelayMs, maxDelayMs)
    const delayMs = kind === 'pause' ? Math.max(pauseMs, backoff) : backoff
    this.current = 'waiting'
    this.emit('closed', { code, reason, opened, retry: true, delayMs, unsent: this.outbox.length })
    this.schedule(delayMs)
  }

  private finish (event: ClosedEvent): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.abandonRefresh()
    for (const socket of [...this.leaving.keys()]) this.dropLeaving(socket)
    this.current = 'closed'
    this.socket = undefined
    this.outbox.length = 0
    this.emit('closed', event)
  }

  private emit<K extends keyof ClientEvents>(type: K, event: ClientEvents[K]): void {
    for (const listener of this.listeners.get(type) ?? []) listener(event)
  }
}

/** A JWT's `exp` (epoch seconds), read without verifying it: only to plan the refresh. */
function expiryOf (token: string): number | undefined {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')
    const claims = JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, '='))) as { exp?: unknown }
    return typeof claims.exp === 'number' ? claims.exp : undefined
  } catch {
    return undefined
  }
}
