/**
 * One endpoint's relay: a client's socket events become backend events, and
 * backend actions become frames and closes on clients' sockets. It keeps the
 * per-client ordering of DESIGN.md §2: `open`, the `message`s in order, then
 * exactly one `close`; a replaced client's `close` precedes its successor's `open`.
 */
import type { WebSocket } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import {
  CloseCodes, encodeBinaryMessage, encodeClose, encodeOpen, encodeTextMessage, sendPayload,
  type ClientAction, type CloseAction, type CloseCode, type Params, type SendAction
} from '../../protocol/index.js'
import type { Identity } from '../auth/authenticator.js'
import type { EndpointConfig, LimitsConfig } from '../config/schema.js'
import type { GatewayMetrics } from '../metrics.js'
import type { OutboundEvent } from '../backend-link/event-queue.js'
import type { Connection, Eviction } from '../cluster/broker.js'
import { claimedNoLater } from '../cluster/connection-id.js'
import { forUsers } from '../cluster/targets.js'
import { ClientSession } from '../sessions/client-session.js'
import type { SessionRegistry } from '../sessions/registry.js'

/** Where client events go: the endpoint's backend link. */
export interface EventSink {
  send (event: OutboundEvent): boolean
}

/** The rest of the cluster, as one endpoint's relay needs it. */
export interface ClusterPort {
  /** Actions for users not held here (and `all`), for the nodes that hold them. */
  forward (endpoint: string, actions: ClientAction[]): void
  /** A connection admitted while its claim could not be checked. */
  register (connection: Connection): void
  /** The connection has ended here. */
  release (connection: Connection): void
}

/** An admitted handshake: its connection, and the close of a lost node's connection to report first. */
export interface Ticket {
  connection: Connection
  lost?: { params: Params }
  /** Admitted while the cluster could not be asked: registered once it can. */
  unchecked?: true
  /**
   * Called once, as the socket is accepted: ends the claim's wait. Says why
   * the connection must close at once when another one superseded it
   * meanwhile (it never goes live: the backend hears nothing of it).
   */
  upgrade (): Eviction | undefined
}

export interface RelayOptions {
  endpoint: Readonly<EndpointConfig>
  limits: Readonly<LimitsConfig>
  registry: SessionRegistry
  sink: EventSink
  cluster: ClusterPort
  metrics: GatewayMetrics
  log: FastifyBaseLogger
  /** `auth.clockToleranceSec`: a token is expired only this long after `exp`. */
  clockToleranceSec: number
}

/** Longest delay setTimeout accepts (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1

const GATEWAY_CODES = new Set<number>(Object.values(CloseCodes).map((c) => c.code))

export class EndpointRelay {
  private heartbeat?: NodeJS.Timeout
  private readonly expiries = new Map<ClientSession, NodeJS.Timeout>()
  /** Evictions waiting for their session's `close` event to be committed. */
  private readonly evictions = new Map<ClientSession, () => void>()
  private readonly labels: { endpoint: string }
  /** Per-message counts, published to prom-client once per tick (its inc() hashes the labels on every call). */
  private messagesIn = 0
  private messagesOut = 0

  constructor (private readonly options: RelayOptions) {
    this.labels = { endpoint: options.endpoint.name }
  }

  get connections (): number {
    return this.options.registry.size
  }

  /** Pings every client each `heartbeatIntervalMs`; one that missed the last pong is dropped (1006). */
  start (): void {
    this.heartbeat = setInterval(() => {
      for (const session of this.options.registry.values()) {
        if (session.isHeld) continue
        if (!session.alive) {
          this.lost(session, CloseCodes.HEARTBEAT_TIMEOUT)
          session.socket.terminate()
          continue
        }
        session.alive = false
        session.socket.ping()
      }
    }, this.options.limits.heartbeatIntervalMs)
    this.heartbeat.unref()
  }

  /**
   * A client finished its handshake: resume its held session, or register a
   * new one (duplicate policy) and tell the backend.
   */
  accept (socket: WebSocket, identity: Identity, ticket: Ticket): void {
    const { registry, limits, metrics, endpoint, cluster } = this.options
    const { connection, lost, unchecked } = ticket
    const { params } = connection
    if (lost) this.reportLost(identity.user, lost.params)
    const superseded = ticket.upgrade()
    if (superseded) {
      this.refuse(socket, connection, superseded === 'replaced' ? CloseCodes.REPLACED : CloseCodes.DUPLICATE_REJECTED)
      return
    }
    const held = registry.get(identity.user)
    if (held?.isHeld) {
      if (sameParams(held.params, params)) {
        this.resume(held, socket, identity, connection)
        return
      }
      // back, but somewhere else (another match): the held session is over
      held.end(CloseCodes.ABNORMAL.code, CloseCodes.ABNORMAL.reason)
    }
    const session = new ClientSession(socket, identity, connection, limits, this.onSessionEnd)
    const admission = registry.admit(session)
    if (!admission.admitted) {
      this.refuse(socket, connection, CloseCodes.DUPLICATE_REJECTED)
      return
    }
    admission.displaced?.close(CloseCodes.REPLACED)
    if (unchecked) cluster.register(connection)
    this.listen(session, socket)
    metrics.connections.inc(this.labels)
    this.announce(session)
    // the open itself may have filled the queue, which closes every client, this one included
    if (session.isEnded) return
    if (endpoint.enforceExpiry && identity.exp !== undefined) this.expireAt(session, identity.exp)
  }

  /**
   * Actions from the backend, in the order it sent them. Users not held
   * here, and `all`, go on to the rest of the cluster; actions another node
   * `forwarded` are for this node's clients only.
   */
  dispatch (actions: readonly ClientAction[], forwarded = false): void {
    const { metrics, cluster, endpoint, log } = this.options
    const onward: ClientAction[] = []
    for (const action of actions) {
      const missing = action.action === 'send' ? this.send(action) : this.close(action)
      if (missing.length > 0) {
        log.debug({ users: missing.length, action: action.action, forwarded }, 'action for users not connected here')
        if (forwarded) metrics.droppedActions.inc({ ...this.labels, reason: 'not_connected' }, missing.length)
        else onward.push(forUsers(action, missing))
      } else if (!forwarded && action.action === 'send' && action.all === true) {
        onward.push(action)
      }
    }
    if (onward.length > 0) cluster.forward(endpoint.name, onward)
    if (this.messagesOut > 0) {
      metrics.messagesOut.inc(this.labels, this.messagesOut)
      this.messagesOut = 0
    }
  }

  /** Every connection held here, held sessions included. */
  * registered (): Iterable<Connection> {
    for (const session of this.options.registry.values()) yield session.connection
  }

  /**
   * Closes connection `id` of `user` for a newer (or, under `reject`, older)
   * one on another node; resolves once its `close` is committed to the link.
   * Claims overwrite each other in order, so the user's connection here goes
   * if it was claimed no later than `id` (it may have replaced `id` here).
   */
  async evict (user: string, id: string, why: Eviction): Promise<void> {
    const session = this.options.registry.get(user)
    if (!session || !claimedNoLater(session.connection.id, id)) return
    const committed = new Promise<void>((resolve) => this.evictions.set(session, resolve))
    session.close(why === 'replaced' ? CloseCodes.REPLACED : CloseCodes.DUPLICATE_REJECTED)
    await committed
  }

  /** Reports a user of a dead node closed (1006) on this node's link; resolves once committed. */
  async reportLost (user: string, params: Params): Promise<void> {
    const { code, reason } = CloseCodes.NODE_LOST
    await new Promise<void>((resolve) => this.reportClose(user, params, code, reason, resolve))
  }

  /** Reports `open` again for a connection the cluster reported closed while this node was cut off. */
  reopen (user: string, id: string): void {
    const session = this.options.registry.get(user)
    if (session?.connection.id === id && !session.isEnded) this.announce(session)
  }

  /** Closes every client of the endpoint with `code`. */
  closeAll (code: CloseCode): void {
    for (const session of [...this.options.registry.values()]) session.close(code)
  }

  /**
   * Closes every client with 1001 and resolves once their sockets are gone;
   * any still open after `timeoutMs` are terminated.
   */
  async shutdown (timeoutMs: number): Promise<void> {
    clearInterval(this.heartbeat)
    const sockets = [...this.options.registry.values()].map((s) => s.socket)
    this.closeAll(CloseCodes.GOING_AWAY)
    const open = sockets.filter((s) => s.readyState !== s.CLOSED)
    if (open.length === 0) return
    await new Promise<void>((resolve) => {
      let left = open.length
      const timer = setTimeout(() => {
        for (const s of open) s.terminate()
        resolve()
      }, timeoutMs)
      for (const s of open) {
        s.once('close', () => {
          if (--left === 0) {
            clearTimeout(timer)
            resolve()
          }
        })
      }
    })
  }

  /** Queues a `close` event; `settled` runs once it is committed, or at once when it was dropped. */
  private reportClose (user: string, params: Params, code: number, reason: string, settled?: () => void): void {
    const text = encodeClose(user, params, code, reason)
    if (!this.options.sink.send({ kind: 'close', user, text, bytes: Buffer.byteLength(text), settled })) settled?.()
  }

  /** A handshake that lost a race with another of the same user closes as it opens; the backend never saw it. */
  private refuse (socket: WebSocket, connection: Connection, why: CloseCode): void {
    this.options.cluster.release(connection)
    this.options.metrics.handshakeFailures.inc({ ...this.labels, reason: 'duplicate' })
    socket.on('error', (err) => this.options.log.debug({ err: err.message }, 'refused duplicate socket error'))
    socket.close(why.code, why.reason)
  }

  private announce (session: ClientSession): void {
    const { user, claims, params } = session
    const text = encodeOpen(user, claims, params)
    this.options.sink.send({ kind: 'open', user, text, bytes: Buffer.byteLength(text), opened: { user, claims, params } })
  }

  /** The backend sees nothing: same session, new socket, kept frames first. */
  private resume (session: ClientSession, socket: WebSocket, identity: Identity, connection: Connection): void {
    const { metrics, endpoint } = this.options
    session.connection = connection
    this.listen(session, socket)
    const flushed = session.resume(socket, CloseCodes.SLOW_CONSUMER, CloseCodes.ABNORMAL)
    metrics.resumes.inc(this.labels)
    metrics.messagesOut.inc(this.labels, flushed)
    clearTimeout(this.expiries.get(session))
    if (endpoint.enforceExpiry && identity.exp !== undefined) this.expireAt(session, identity.exp)
  }

  /** The socket died without a close frame: hold the session for `resumeGraceMs`, or end it now. */
  private lost (session: ClientSession, why: CloseCode): void {
    const graceMs = this.options.endpoint.resumeGraceMs
    if (session.isHeld) return
    if (graceMs > 0 && !session.isEnded) {
      session.hold(graceMs, () => session.end(why.code, why.reason))
      this.options.log.info({ user: session.user, graceMs, why: why.reason }, 'client connection lost; holding its session for a resume')
    } else {
      session.end(why.code, why.reason)
    }
  }

  /** Events of a socket that has since been replaced by a resume are ignored. */
  private listen (session: ClientSession, socket: WebSocket): void {
    const current = (): boolean => session.socket === socket
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (current()) this.onFrame(session, data, isBinary)
    })
    socket.on('pong', () => { session.alive = true })
    socket.on('close', (code: number, reason: Buffer) => {
      if (!current()) return
      if (code === CloseCodes.ABNORMAL.code) this.lost(session, CloseCodes.ABNORMAL)
      else session.end(code, reason.toString())
    })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // protocol errors end the session; a reset connection is an abnormal close, reported by 'close'
      if (current() && err.code?.startsWith('WS_ERR_')) session.end(...closeCodeForError(err))
    })
  }

  private onFrame (session: ClientSession, data: Buffer, isBinary: boolean): void {
    if (session.isEnded) return
    const { limits, sink } = this.options
    // ws enforces the largest limit of all endpoints; this endpoint's may be smaller
    if (data.length > limits.maxPayloadBytes) {
      session.close(CloseCodes.MESSAGE_TOO_BIG)
      return
    }
    if (!session.bucket.take()) {
      session.close(CloseCodes.RATE_LIMITED)
      return
    }
    const text = isBinary ? encodeBinaryMessage(session.prefix, data) : encodeTextMessage(session.prefix, data.toString())
    sink.send({ kind: 'message', user: session.user, text, bytes: Buffer.byteLength(text) })
    if (this.messagesIn++ === 0) setImmediate(this.publishMessagesIn)
  }

  private readonly publishMessagesIn = (): void => {
    this.options.metrics.messagesIn.inc(this.labels, this.messagesIn)
    this.messagesIn = 0
  }

  private readonly onSessionEnd = (session: ClientSession, code: number, reason: string): void => {
    const { registry, metrics, cluster } = this.options
    if (registry.remove(session)) cluster.release(session.connection)
    if (session.keptFrames > 0) metrics.droppedActions.inc({ ...this.labels, reason: 'resume_expired' }, session.keptFrames)
    clearTimeout(this.expiries.get(session))
    this.expiries.delete(session)
    const settled = this.evictions.get(session)
    this.evictions.delete(session)
    this.reportClose(session.user, session.params, code, reason, settled)
    metrics.connections.dec(this.labels)
    // application codes (3000-4999) are the client's to choose: one label for all, so series stay bounded
    metrics.clientCloses.inc({ ...this.labels, code: code >= 3000 && !GATEWAY_CODES.has(code) ? 'application' : String(code) })
  }

  /** Delivers to the users held here; returns the ones that are not. */
  private send (action: SendAction): string[] {
    const { registry, metrics, log } = this.options
    const users = action.all ? [...registry.values()].map((s) => s.user) : action.users ?? [action.user as string]
    const payload = sendPayload(action.data, action.binary)
    // encode once, write many: ws would otherwise re-encode a string per socket
    const frame = users.length > 1 && typeof payload === 'string' ? Buffer.from(payload) : payload
    const binary = action.binary === true
    const missing: string[] = []
    for (const user of users) {
      const session = registry.get(user)
      if (!session) {
        missing.push(user)
        continue
      }
      const delivery = session.deliver(frame, binary, CloseCodes.SLOW_CONSUMER, CloseCodes.ABNORMAL)
      if (delivery === 'sent') {
        this.messagesOut++
      } else if (delivery === 'slow') {
        metrics.droppedActions.inc({ ...this.labels, reason: 'slow_consumer' })
        log.info({ user }, 'client too slow to read; closed (1013)')
      } else if (delivery === 'gone') {
        metrics.droppedActions.inc({ ...this.labels, reason: 'resume_expired' })
      }
    }
    return missing
  }

  /** Closes the users held here; returns the ones that are not. */
  private close (action: CloseAction): string[] {
    const missing: string[] = []
    for (const user of action.users ?? [action.user as string]) {
      const session = this.options.registry.get(user)
      if (session) session.close({ code: action.code ?? CloseCodes.NORMAL.code, reason: action.reason ?? '' })
      else missing.push(user)
    }
    return missing
  }

  /** Closes with 4401 once `exp` (plus the configured clock tolerance) has passed; far-off expiries re-arm. */
  private expireAt (session: ClientSession, exp: number): void {
    const deadline = (exp + this.options.clockToleranceSec) * 1000
    const delay = Math.max(0, deadline - Date.now())
    const timer = setTimeout(() => {
      if (Date.now() >= deadline) session.close(CloseCodes.TOKEN_EXPIRED)
      else this.expireAt(session, exp)
    }, Math.min(delay, MAX_TIMER_MS))
    timer.unref()
    this.expiries.set(session, timer)
  }
}

/** What a ws protocol error means for the `close` event: ws has already closed the socket with the matching code. */
function closeCodeForError (err: NodeJS.ErrnoException): [number, string] {
  switch (err.code) {
    case 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH': return [CloseCodes.MESSAGE_TOO_BIG.code, CloseCodes.MESSAGE_TOO_BIG.reason]
    case 'WS_ERR_INVALID_UTF8': return [CloseCodes.INVALID_PAYLOAD.code, CloseCodes.INVALID_PAYLOAD.reason]
    default: return [CloseCodes.PROTOCOL_ERROR.code, CloseCodes.PROTOCOL_ERROR.reason]
  }
}

function sameParams (a: Params, b: Params): boolean {
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k])
}
