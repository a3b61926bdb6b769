/**
 * The client side of one endpoint's relay: a finished handshake becomes a
 * session, its socket's frames become `message` events for the backend, a
 * socket dropped without a close frame is held for a resume, and every session's
 * end becomes exactly one `close` event. Keeps the per-client ordering of
 * PROTOCOL.md §3: `open`, the `message`s in order, then exactly one `close`;
 * a replaced client's `close` precedes its successor's `open`. A refresh
 * (the same user and params connecting again with `?refresh=1`, PROTOCOL.md §5d) moves the
 * live session to the new socket: the backend sees no close and no open.
 */
import type { WebSocket } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import {
  CloseCodes, detached, encodeBinaryMessage, encodeClose, encodeOpen, encodeRefresh, encodeTextMessage, messageRecordBytes,
  type CloseCode, type Params, type SyncUser
} from '../../protocol/index.js'
import type { Identity } from '../auth/authenticator.js'
import type { EndpointConfig, LimitsConfig } from '../config/schema.js'
import type { GatewayMetrics } from '../metrics.js'
import type { OutboundEvent } from '../backend-link/event-queue.js'
import type { Connection, Eviction, Ticket } from '../domain.js'
import { claimedNoLater } from '../cluster/connection-id.js'
import { ClientSession, type SessionLimits } from '../sessions/client-session.js'
import { onProtocolError } from '../sessions/protocol-errors.js'
import type { SessionRegistry } from '../sessions/registry.js'
import { RateBuckets } from '../sessions/rate-buckets.js'

/** Where client events go: the endpoint's backend link. */
export interface EventSink {
  send (event: OutboundEvent): boolean
}

/** The cluster's record of who is connected where, as the client side needs it. */
export interface ClaimPort {
  /** A connection admitted while its claim could not be checked. */
  register (connection: Connection): void
  /** The connection has ended here. */
  release (connection: Connection): void
}

export interface ClientSideOptions {
  endpoint: Readonly<EndpointConfig>
  limits: Readonly<LimitsConfig>
  registry: SessionRegistry
  sink: EventSink
  cluster: ClaimPort
  metrics: GatewayMetrics
  log: FastifyBaseLogger
  /** `auth.clockToleranceSec`: a token is expired only this long after `exp`. */
  clockToleranceSec: number
}

const GATEWAY_CODES = new Set<number>(Object.values(CloseCodes).map((c) => c.code))
/** Only the gateway may report 4401/4409/4410 (a backend's roster reads 4410 as a move, PROTOCOL.md §7): a player's own use of them is reported as this. */
const CLIENT_USED_GATEWAY_CODE = { code: 4000, reason: 'client used a gateway close code' }

export class ClientSide {
  private heartbeat?: NodeJS.Timeout
  /** Evictions waiting for their session's `close` event to be committed. */
  private readonly evictions = new Map<ClientSession, () => void>()
  private readonly labels: { endpoint: string }
  private readonly rates: RateBuckets
  private readonly sessionLimits: SessionLimits
  /** `backend.encoding` `binary` or `raw`: binary frames go to the backend raw, not base64. */
  private readonly rawBinary: boolean
  /** `backend.encoding: "raw"`: text frames go to the backend raw too, never parsed here. */
  private readonly rawText: boolean
  /** Per-message count, published to prom-client once per tick (its inc() hashes the labels on every call). */
  private messagesIn = 0

  constructor (private readonly options: ClientSideOptions) {
    const { endpoint, limits, clockToleranceSec } = options
    this.labels = { endpoint: endpoint.name }
    this.rates = new RateBuckets(limits.messagesPerSecond, limits.burst)
    this.rawBinary = endpoint.backend.encoding !== 'json'
    this.rawText = endpoint.backend.encoding === 'raw'
    // every session registered is a connection, held ones included, until its end removes it
    options.metrics.addConnectionCount(endpoint.name, () => this.connections)
    this.sessionLimits = { maxBufferedBytes: limits.maxBufferedBytes, enforceExpiry: endpoint.enforceExpiry, clockToleranceSec, connIds: endpoint.duplicate === 'allow' }
  }

  get connections (): number {
    return this.options.registry.size
  }

  /**
   * Gives every client a heartbeat each `heartbeatIntervalMs` (one timer for
   * the endpoint, not one per client); one that missed the last pong is
   * dropped (1006). Rate buckets that have refilled are forgotten then too.
   */
  start (): void {
    this.heartbeat = setInterval(() => {
      this.rates.sweep()
      for (const session of this.options.registry.values()) {
        if (session.isHeld || session.heartbeat()) continue
        this.socketDropped(session, CloseCodes.HEARTBEAT_TIMEOUT)
        session.socket.terminate()
      }
    }, this.options.limits.heartbeatIntervalMs)
    this.heartbeat.unref()
  }

  /**
   * A client finished its handshake: resume its held session, or register a
   * new one (duplicate policy) and tell the backend.
   */
  accept (socket: WebSocket, identity: Identity, ticket: Ticket): void {
    const { registry, metrics, cluster } = this.options
    const { connection, lost, unchecked } = ticket
    const { params } = connection
    if (lost) this.reportLost(identity.user, lost.params)
    const superseded = ticket.upgrade()
    if (superseded) {
      this.refuse(socket, connection, superseded === 'replaced' ? CloseCodes.REPLACED : CloseCodes.DUPLICATE_REJECTED)
      return
    }
    // under `allow` the user's oldest held session with these params resumes; the others are their own connections
    const existing = registry.policy === 'allow'
      ? registry.connectionsOf(identity.user).find((s) => s.isHeld && sameParams(s.params, params))
      : registry.get(identity.user)
    if (existing?.isHeld) {
      if (sameParams(existing.params, params)) {
        this.resume(existing, socket, identity, connection)
        if (unchecked && existing.conn === undefined) cluster.register(connection)
        return
      }
      // back, but somewhere else (another match): the held session is over
      existing.end(CloseCodes.ABNORMAL.code, CloseCodes.ABNORMAL.reason)
    } else if (connection.refresh && existing && !existing.isEnded && registry.policy === 'replace' && sameParams(existing.params, params)) {
      this.refresh(existing, socket, identity, connection)
      if (unchecked) cluster.register(connection)
      return
    }
    const session = new ClientSession(socket, identity, connection, this.sessionLimits, this.onSessionEnd)
    const entry = registry.register(session)
    if (!entry.registered) {
      this.refuse(socket, connection, CloseCodes.DUPLICATE_REJECTED)
      return
    }
    entry.displaced?.close(CloseCodes.REPLACED)
    if (unchecked) cluster.register(connection)
    this.listen(session, socket)
    if (ticket.refreshed === true) metrics.refreshes.inc({ ...this.labels, from: 'cluster' })
    this.announce(session, ticket.refreshed === true)
    // the open itself may have filled the queue, which closes every client, this one included
    if (session.isEnded) return
    session.expireAt(identity.exp)
  }

  /** Every connection on this node, held sessions included. */
  * registered (): Iterable<Connection> {
    for (const session of this.options.registry.values()) yield session.connection
  }

  /**
   * Closes connection `id` of `user` for a newer (or, under `reject`, older)
   * one on another node; resolves once its `close` is committed to the link.
   * Claims overwrite each other in order, so the user's connection here goes
   * if it was claimed no later than `id` (it may have replaced `id` here).
   * A replace by a connection with the same params (`params`) is a refresh
   * on another node: closed with 4410, and said so (PROTOCOL.md §5d).
   */
  async evict (user: string, id: string, why: Eviction, params?: Params): Promise<void | 'refreshed'> {
    const { registry } = this.options
    // under `allow` each connection is its own: only the one named goes
    const session = registry.policy === 'allow' ? registry.connection(id) : registry.get(user)
    if (!session || !claimedNoLater(session.connection.id, id)) return
    const refreshed = why === 'replaced' && params !== undefined && sameParams(session.params, params)
    const committed = new Promise<void>((resolve) => this.evictions.set(session, resolve))
    session.close(refreshed ? CloseCodes.REFRESHED : why === 'replaced' ? CloseCodes.REPLACED : CloseCodes.DUPLICATE_REJECTED)
    await committed
    if (refreshed) return 'refreshed'
  }

  /** Reports a user (under `allow`, their connection `conn`) of a dead node closed (1006) on this node's link; resolves once committed. */
  async reportLost (user: string, params: Params, conn?: string): Promise<void> {
    const { code, reason } = CloseCodes.NODE_LOST
    await new Promise<void>((resolve) => this.reportClose(user, params, code, reason, resolve, conn))
  }

  /** Reports `open` again for a connection the cluster reported closed while this node was cut off. */
  reopen (user: string, id: string): void {
    const session = this.options.registry.connectionsOf(user).find((s) => s.connection.id === id)
    if (session && !session.isEnded) this.announce(session)
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
  private reportClose (user: string, params: Params, code: number, reason: string, settled?: () => void, conn?: string): void {
    const text = encodeClose(user, params, code, reason, conn)
    if (!this.options.sink.send({ kind: 'close', user, conn, text, bytes: Buffer.byteLength(text), settled })) settled?.()
  }

  /** A handshake that lost a race with another of the same user closes as it opens; the backend never saw it. */
  private refuse (socket: WebSocket, connection: Connection, why: CloseCode): void {
    this.options.cluster.release(connection)
    this.options.metrics.handshakeFailures.inc({ ...this.labels, reason: 'duplicate' })
    socket.on('error', (err) => this.options.log.debug({ err: err.message }, 'refused duplicate socket error'))
    socket.close(why.code, why.reason)
  }

  /** `refreshed`: the session continues one another node closed with 4410 (PROTOCOL.md §5d). */
  private announce (session: ClientSession, refreshed = false): void {
    const { user, conn } = session
    const text = encodeOpen(user, session.claims, session.params, conn, refreshed)
    this.options.sink.send({ kind: 'open', user, conn, text, bytes: Buffer.byteLength(text), opened: rosterEntry(session) })
  }

  /** The session's new claims: a `refresh` event for a backend that opted in, else only the roster of later syncs (link.ts). */
  private announceRefresh (session: ClientSession): void {
    const { user, conn } = session
    const text = encodeRefresh(user, session.claims, session.params, conn)
    this.options.sink.send({ kind: 'refresh', user, conn, text, bytes: Buffer.byteLength(text), opened: rosterEntry(session) })
  }

  /**
   * The backend sees no close and no open: same session, new socket, kept
   * frames first; new claims as a refresh. Under `allow` the session stays
   * the connection it was (its `conn`, its place in the cluster), and the
   * new handshake's claim is given back.
   */
  private resume (session: ClientSession, socket: WebSocket, identity: Identity, connection: Connection): void {
    const { metrics, cluster } = this.options
    const before = JSON.stringify(session.claims)
    this.listen(session, socket)
    const keep = session.conn !== undefined
    if (keep) cluster.release(connection)
    const flushed = session.resume(socket, keep ? session.connection : connection, identity)
    metrics.resumes.inc(this.labels)
    metrics.messagesOut.inc(this.labels, flushed)
    if (JSON.stringify(session.claims) !== before) this.announceRefresh(session)
  }

  /** A live session moves to its player's new socket (PROTOCOL.md §5d): the old one ends with 4410, the backend hears only `refresh`. */
  private refresh (session: ClientSession, socket: WebSocket, identity: Identity, connection: Connection): void {
    const { metrics } = this.options
    this.listen(session, socket)
    session.refresh(socket, connection, identity, (flushed) => metrics.messagesOut.inc(this.labels, flushed))
    metrics.refreshes.inc({ ...this.labels, from: 'node' })
    this.announceRefresh(session)
  }

  /** The socket died without a close frame: hold the session for `resumeGraceMs`, or end it now. */
  private socketDropped (session: ClientSession, why: CloseCode): void {
    const graceMs = this.options.endpoint.resumeGraceMs
    if (session.isHeld) return
    if (graceMs > 0 && !session.isEnded) {
      session.hold(graceMs, () => session.end(why.code, why.reason))
      this.options.log.info({ user: session.user, graceMs, why: why.reason }, 'client socket dropped; holding its session for a resume')
    } else {
      session.end(why.code, why.reason)
    }
  }

  /**
   * Events of a socket that has since been replaced by a resume are ignored;
   * one a refresh is leaving is still read until it closes, which completes
   * the switch.
   */
  private listen (session: ClientSession, socket: WebSocket): void {
    const attached = (): boolean => session.socket === socket
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (attached() || session.previousSocket === socket) this.onFrame(session, data, isBinary)
    })
    socket.on('close', (code: number, reason: Buffer) => {
      if (session.previousSocket === socket) session.switched()
      if (!attached()) return
      if (code === CloseCodes.ABNORMAL.code) this.socketDropped(session, CloseCodes.ABNORMAL)
      else if (code >= 4000 && GATEWAY_CODES.has(code)) session.end(CLIENT_USED_GATEWAY_CODE.code, CLIENT_USED_GATEWAY_CODE.reason)
      else session.end(code, reason.toString())
    })
    // protocol errors end the session with the code and reason the player got
    onProtocolError(socket, ({ code, reason }) => {
      if (attached()) session.end(code, reason)
    })
    // the only 'error' listener left (routes/endpoints.ts drops the inherited one); a reset connection is reported by 'close'
    socket.on('error', (err) => this.options.log.debug({ user: session.user, err: err.message }, 'client socket error'))
  }

  private onFrame (session: ClientSession, data: Buffer, isBinary: boolean): void {
    if (session.isEnded) return
    const { limits, sink } = this.options
    // ws enforces the largest limit of all endpoints; this endpoint's may be smaller
    if (data.length > limits.maxPayloadBytes) {
      session.close(CloseCodes.MESSAGE_TOO_BIG)
      return
    }
    if (!this.rates.take(session.user)) {
      session.close(CloseCodes.RATE_LIMITED)
      return
    }
    // a MESSAGE or TEXT record has no `conn`: under `allow` frames take the JSON form (PROTOCOL.md §6a)
    const head = (isBinary ? this.rawBinary : this.rawText) && session.conn === undefined ? session.recordHead : undefined
    if (head !== undefined) {
      // PROTOCOL.md §2a: the player's bytes go to the backend as they are, in a binary link frame; ws hands
      // them over as a view into the socket read, which a queued message must not pin (JSON makes a string)
      const bytes = detached(data)
      const raw = isBinary ? { head, data: bytes } : { head, data: bytes, text: true as const }
      sink.send({ kind: 'message', user: session.user, text: '', raw, bytes: messageRecordBytes(head, data.length) })
    } else {
      const text = isBinary ? encodeBinaryMessage(session.prefix, data) : encodeTextMessage(session.prefix, data.toString())
      sink.send({ kind: 'message', user: session.user, conn: session.conn, text, bytes: Buffer.byteLength(text) })
    }
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
    const settled = this.evictions.get(session)
    this.evictions.delete(session)
    this.reportClose(session.user, session.params, code, reason, settled, session.conn)
    // application codes (3000-4999) are the client's to choose: one label for all, so series stay bounded
    metrics.clientCloses.inc({ ...this.labels, code: code >= 3000 && !GATEWAY_CODES.has(code) ? 'application' : String(code) })
  }
}

function sameParams (a: Params, b: Params): boolean {
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k])
}

/** What the link's roster (and so `sync`) holds of a session: `conn` only under `allow`. */
function rosterEntry ({ user, conn, claims, params }: ClientSession): SyncUser {
  return conn === undefined ? { user, claims, params } : { user, conn, claims, params }
}
