/**
 * One persistent link to one backend (protocol/PROTOCOL.md §1, §5): dialled
 * at start, redialled by reconnecting-websocket with this link's own
 * jittered backoff (reset whenever the link comes up), checked with
 * pings. Events are queued while it is down and written in batches while it
 * is up. Each (re)connect sends `hello`, then `sync` with the roster as of the
 * last committed event, then every uncommitted event, in order. An event is
 * committed when written, or with `backend.acks` when acknowledged (§5a).
 */
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import rwsModule, { type CloseEvent, type ErrorEvent } from 'reconnecting-websocket'
import { WebSocket } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import {
  decodeActions, decodeBinaryActions, encodeBinaryFrame, encodeFrame, encodeHello, encodeSync, withSeq, withoutSeq,
  type AckAction, type Action, type BinaryError, type ClientAction, type PoolAction, type SyncUser
} from '../../protocol/index.js'
import type { BackendConfig, QueueConfig } from '../config/schema.js'
import type { GatewayMetrics } from '../metrics.js'
import { linkSocketClass } from './link-socket.js'
import { clientOf, EventQueue, type OutboundEvent } from './event-queue.js'

/** `connecting` covers the first dial and every outage still within `queue.graceMs`. */
export type LinkState = 'connecting' | 'up' | 'unavailable' | 'closed'

export interface LinkEvents {
  /** Valid client actions from one backend frame, in order (acks are the link's own). */
  actions: [ClientAction[]]
  /** `drain` or `undrain`, for the pool this link belongs to. */
  pool: [PoolAction]
  state: [LinkState]
  /** Everything queued has been written out to the kernel. */
  drained: []
  /** A client's message passed its share of the queue (`queue.maxClientBytes`) and was dropped: close that client (`clientOf`: its user, or its connection under `allow`). */
  overShare: [client: string]
}

export interface LinkOptions {
  endpoint: string
  nodeId: string
  /** The cluster this node belongs to, for `hello`; absent for a node alone. */
  cluster?: string
  /** The backend this link dials, and its id in the endpoint's pool (metrics, logs). */
  url: string
  member: string
  /** Whether `hello` names the member: only for a pool configured with `backend.urls`. */
  announceMember: boolean
  backend: Readonly<BackendConfig>
  queue: Readonly<QueueConfig>
  metrics: GatewayMetrics
  log: FastifyBaseLogger
}

// The package is CommonJS with `module.exports = class`, while its typings
// declare an ES default export: at run time the import is the class itself.
const ReconnectingWebSocket = rwsModule as unknown as typeof rwsModule.default
type ReconnectingWebSocket = InstanceType<typeof ReconnectingWebSocket>

/** Stop writing while this much is still unsent on the socket; the queue (and its bounds) absorbs the rest. */
const HIGH_WATER_BYTES = 1 << 20
/** Largest batch frame built from queued events. */
const MAX_FRAME_BYTES = 256 * 1024
/**
 * `open`/`close` events alone wait until this long after the previous flush,
 * so a burst of handshakes shares frames instead of costing one write each
 * (at 1 ms a reconnect storm still wrote about one frame per handshake:
 * ~10 % of the gateway's CPU per handshake, and a wake-up of the backend).
 */
const CONTROL_FLUSH_GAP_MS = 10
/** While dials keep failing for one reason, warn at most this often. */
const DIAL_WARN_INTERVAL_MS = 30000
/** Problems listed in the log line of one bad backend frame; the rest are only counted. */
const MAX_LOGGED_PROBLEMS = 10
/** Longest problem text logged (one action's list of invalid fields can be megabytes). */
const MAX_PROBLEM_CHARS = 300

export class BackendLink extends EventEmitter<LinkEvents> {
  private rws?: ReconnectingWebSocket
  private socket?: WebSocket
  private readonly queue: EventQueue
  /** Who the backend has been told is connected, by client (`clientOf`): every open/close committed so far. */
  private readonly roster = new Map<string, SyncUser>()
  private readonly acks: boolean
  /** `backend.encoding` `binary` or `raw`: raw messages and binary frames both ways (PROTOCOL.md §2a). */
  private readonly binary: boolean
  /** With acks: the next event's seq, and the last one the backend acknowledged. */
  private nextSeq = 1
  private ackedSeq = 0
  /** `hello.session`: lives exactly as long as `nextSeq`, so a backend can tell a new sequence from a replay. */
  private readonly session = randomUUID()
  private current: LinkState = 'connecting'
  private graceTimer?: NodeJS.Timeout
  private flushScheduled = false
  private flushTimer?: NodeJS.Timeout
  private lastFlush = 0
  private connections = 0
  /** Redials since the link was last up: the exponent of the backoff. */
  private redials = 0
  /** Whether the current socket ever opened: its errors are then the link's, not a failed dial. */
  private opened = false
  private dialFailures = 0
  private lastDialWarning?: { reason: string, at: number }
  private readonly labels: { endpoint: string }
  /** For the link's own gauges and counters: one series per pool member. */
  private readonly memberLabels: { endpoint: string, member: string }

  constructor (private readonly options: LinkOptions) {
    super()
    this.queue = new EventQueue(options.queue.maxEvents, options.queue.maxBytes, options.queue.maxClientBytes)
    this.labels = { endpoint: options.endpoint }
    this.memberLabels = { endpoint: options.endpoint, member: options.member }
    this.acks = options.backend.acks
    this.binary = options.backend.encoding !== 'json'
  }

  get state (): LinkState {
    return this.current
  }

  /** Where the link dials, without credentials or query, for logs. */
  get target (): string {
    const url = new URL(this.options.url)
    return `${url.protocol}//${url.host}${url.pathname}`
  }

  start (): void {
    const { backend } = this.options
    const nextDelay = (): number => this.nextRedialDelay()
    this.rws = new ReconnectingWebSocket(this.options.url, undefined, {
      WebSocket: linkSocketClass({
        token: backend.token,
        mask: backend.mask,
        pingIntervalMs: backend.pingIntervalMs,
        maxPayload: backend.maxFrameBytes,
        onSocket: (socket) => {
          this.socket = socket
          this.opened = false
        },
        onError: (err) => this.onSocketError(err)
      }),
      connectionTimeout: backend.connectTimeoutMs,
      maxEnqueuedMessages: 0,
      // reconnecting-websocket would grow the delay until a link stayed up for its `minUptime` (5 s);
      // the link keeps its own count instead, reset on every open: factor 1, and the delay is ours
      reconnectionDelayGrowFactor: 1,
      maxReconnectionDelay: backend.maxReconnectDelayMs,
      get minReconnectionDelay () { return nextDelay() }
    })
    // reconnecting-websocket sets every socket's binaryType to its own (default 'blob'); binary link frames are read as Buffers
    this.rws.binaryType = 'nodebuffer' as ReconnectingWebSocket['binaryType']
    this.rws.addEventListener('open', () => this.onOpen())
    this.rws.addEventListener('close', (event) => this.onClose(event))
    this.rws.addEventListener('error', (event) => this.onDialError(event))
    this.rws.addEventListener('message', (event) => this.onMessage(event.data))
    this.startGrace()
  }

  /**
   * Queues one event for the backend. False when it was dropped (counted):
   * the backend is unavailable, or the queue is full, which makes it so.
   */
  send (event: OutboundEvent): boolean {
    if (event.kind === 'refresh' && !this.options.backend.refresh) return this.refreshSilently(event)
    if (this.current === 'unavailable' || this.current === 'closed') {
      this.options.metrics.droppedEvents.inc({ ...this.labels, reason: 'backend_unavailable' })
      return false
    }
    if (this.acks) {
      const seq = this.nextSeq
      // a raw message's seq is written into its record when the frame is built
      const text = event.raw ? event.text : withSeq(event.text, seq)
      event = { ...event, seq, text, bytes: event.bytes + text.length - event.text.length }
    }
    const result = this.queue.push(event)
    if (result === 'over_share') {
      const { metrics, log, queue } = this.options
      metrics.droppedEvents.inc({ ...this.labels, reason: 'client_share' })
      const client = clientOf(event)
      log.warn({ user: event.user, conn: event.conn, queuedBytes: this.queue.bytesOf(client), maxClientBytes: queue.maxClientBytes }, 'a client passed its share of the event queue (queue.maxClientBytes); closing it (1008)')
      this.emit('overShare', client)
      return false
    }
    if (result === 'full') {
      this.options.metrics.droppedEvents.inc({ ...this.labels, reason: 'queue_full' })
      this.becomeUnavailable(`event queue full (queue.maxEvents ${this.options.queue.maxEvents}, queue.maxBytes ${this.options.queue.maxBytes}${this.acks ? ', unacknowledged events included' : ''})`)
      return false
    }
    if (event.seq !== undefined) this.nextSeq++
    if (this.current === 'up') this.scheduleFlush(event.kind === 'message')
    // while up, flush() updates the queue gauges once per batch
    else this.observeQueue()
    return true
  }

  /**
   * A refresh the backend did not opt into: nothing is written, but the
   * roster (committed, or the user's queued `open`) takes the new claims, so
   * every later `sync` carries them (PROTOCOL.md §5d).
   */
  private refreshSilently (event: OutboundEvent): boolean {
    const { opened } = event
    if (opened === undefined) return false
    const client = clientOf(event)
    if (this.roster.has(client)) this.roster.set(client, opened)
    else this.queue.reviseOpen(client, opened)
    return true
  }

  /**
   * A `message` goes out on the next turn of the event loop; `open`/`close`
   * alone wait until CONTROL_FLUSH_GAP_MS after the previous flush. Order is
   * untouched: the queue is FIFO and every flush takes from its head.
   */
  private scheduleFlush (urgent: boolean): void {
    if (this.flushScheduled) return
    const wait = urgent ? 0 : this.lastFlush + CONTROL_FLUSH_GAP_MS - performance.now()
    if (wait <= 0) {
      this.flushScheduled = true
      setImmediate(() => this.flush())
    } else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined
        this.flush()
      }, wait)
    }
  }

  /** Resolves once everything queued is committed (written, or acked), the link leaves `up`, or `timeoutMs` passes; with the count left uncommitted. */
  async drain (timeoutMs: number): Promise<number> {
    if (this.isDrained() || this.current !== 'up') return this.queue.length
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.off('drained', done)
        this.off('state', done)
        resolve()
      }
      const timer = setTimeout(done, timeoutMs)
      this.once('drained', done)
      this.once('state', done)
    })
    return this.queue.length
  }

  /** Nothing uncommitted: every event written (and acked, with acks). */
  get idle (): boolean {
    return this.queue.length === 0
  }

  /**
   * Writes a frame outside the event sequence (no seq, never replayed), only
   * while the link is up with nothing uncommitted, so it follows every event
   * already sent. False when it could not be written now.
   */
  notify (frame: string): boolean {
    const socket = this.socket
    if (this.current !== 'up' || !this.idle || !socket || socket.readyState !== WebSocket.OPEN) return false
    socket.send(frame)
    return true
  }

  /**
   * Hands over everything this link's backend has not committed, for a
   * failover (docs/pools.md): the roster of committed opens, in order, and
   * every uncommitted event, in order and without its seq. The backend is
   * then told of nobody: its next `sync` is empty and replays nothing.
   */
  surrender (): { roster: SyncUser[], events: OutboundEvent[] } {
    const roster = [...this.roster.values()]
    this.roster.clear()
    const events = this.queue.clear().map((event) => {
      if (event.seq === undefined || event.raw) return { ...event, seq: undefined }
      const text = withoutSeq(event.text, event.seq)
      return { ...event, seq: undefined, text, bytes: event.bytes - (event.text.length - text.length) }
    })
    this.ackedSeq = this.nextSeq - 1
    this.observeQueue()
    return { roster, events }
  }

  close (): void {
    clearTimeout(this.graceTimer)
    clearTimeout(this.flushTimer)
    this.setState('closed')
    this.rws?.close(1001, 'gateway shutting down')
  }

  /** Closes for good and drops this member's series: a member that left the pool must not stay in /metrics for ever. */
  retire (): void {
    this.close()
    const { metrics } = this.options
    for (const series of [metrics.linkUp, metrics.queueEvents, metrics.queueBytes, metrics.linkReconnects]) series.remove(this.memberLabels)
  }

  private onOpen (): void {
    const { log, metrics, endpoint, nodeId, backend } = this.options
    const socket = this.socket
    if (this.current === 'closed' || !socket) return
    clearTimeout(this.graceTimer)
    this.graceTimer = undefined
    this.opened = true
    this.redials = 0
    this.dialFailures = 0
    this.lastDialWarning = undefined
    if (this.connections++ > 0) metrics.linkReconnects.inc(this.memberLabels)
    this.queue.rewind()
    const member = this.options.announceMember ? this.options.member : undefined
    socket.send(encodeHello(nodeId, endpoint, this.session, {
      acks: this.acks || undefined,
      cluster: this.options.cluster,
      member,
      encoding: this.binary ? backend.encoding as 'binary' | 'raw' : undefined,
      refresh: backend.refresh || undefined
    }))
    // a large sync may leave the socket above the high-water mark: its write callback resumes the flush
    socket.send(encodeSync([...this.roster.values()], this.acks ? this.ackedSeq : undefined), this.afterWrite)
    log.info({ backend: this.target, users: this.roster.size, queued: this.queue.length }, 'backend link up')
    this.setState('up')
    this.flush()
  }

  private onClose (event: CloseEvent): void {
    if (this.current === 'closed') return
    if (this.current === 'up') {
      this.options.log.warn({ backend: this.target, code: event.code, reason: event.reason }, 'backend link down; queueing events')
      this.setState('connecting')
    }
    if (this.current === 'connecting') this.startGrace()
  }

  /**
   * The delay before the next dial: `minReconnectDelayMs` doubled per dial
   * since the link was last up, capped at `maxReconnectDelayMs`, jittered
   * to 50-100 % so that many gateways do not redial in step.
   */
  private nextRedialDelay (): number {
    const { backend, log } = this.options
    // read on every dial; reconnecting-websocket waits only when its own count is above 0 (not the first dial, nor after reconnect())
    if (this.rws === undefined || this.rws.retryCount === 0) return 0
    const base = Math.min(backend.minReconnectDelayMs * 2 ** this.redials, backend.maxReconnectDelayMs)
    this.redials++
    const delayMs = Math.round(base * (0.5 + Math.random() * 0.5))
    log.debug({ backend: this.target, attempt: this.redials, delayMs }, 'backend link redial scheduled')
    return delayMs
  }

  /**
   * A dial that failed: every one at debug; a warning when the link first
   * fails, when the reason changes, and at most every DIAL_WARN_INTERVAL_MS
   * while it keeps failing for the same reason.
   */
  private onDialError (event: ErrorEvent): void {
    if (this.opened || this.current === 'closed') return
    const { log, backend } = this.options
    const reason = event.message === 'TIMEOUT' ? `no answer within backend.connectTimeoutMs (${backend.connectTimeoutMs} ms)` : event.message
    log.debug({ backend: this.target, err: reason }, 'backend dial failed')
    this.dialFailures++
    const now = performance.now()
    const last = this.lastDialWarning
    if (last !== undefined && last.reason === reason && now - last.at < DIAL_WARN_INTERVAL_MS) return
    log.warn({ backend: this.target, reason, failedDials: this.dialFailures, state: this.current }, 'backend link cannot connect; redialling')
    this.lastDialWarning = { reason, at: now }
    this.dialFailures = 0
  }

  /** Errors of an open link: a frame ws refused (too big, not UTF-8, bad opcode) drops the link; counted. */
  private onSocketError (err: NodeJS.ErrnoException): void {
    const { log, metrics, backend } = this.options
    if (!this.opened) return
    const reason = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'frame_too_big' : 'protocol_error'
    metrics.backendFrameErrors.inc({ ...this.labels, reason })
    const limit = reason === 'frame_too_big' ? ` (backend.maxFrameBytes ${backend.maxFrameBytes})` : ''
    log.warn({ backend: this.target, err: err.message, code: err.code }, `backend broke the WebSocket protocol${limit}; dropping the link`)
  }

  private onMessage (data: unknown): void {
    const { metrics, log } = this.options
    let decoded: { items: Action[], errors: BinaryError[] }
    if (typeof data === 'string') {
      decoded = decodeActions(data)
    } else if (this.binary && Buffer.isBuffer(data)) {
      decoded = decodeBinaryActions(data)
    } else {
      metrics.backendFrameErrors.inc({ ...this.labels, reason: 'binary_frame' })
      log.warn('backend sent a binary frame; the protocol is JSON text frames unless backend.encoding is "binary" or "raw"')
      return
    }
    const { items, errors } = decoded
    if (errors.length > 0) {
      // one log line and one count per kind, however many actions were bad
      const kinds = new Map<string, number>()
      // a binary frame's problems past the first hundred come as one entry per kind, with their count
      for (const error of errors) kinds.set(error.kind, (kinds.get(error.kind) ?? 0) + (error.count ?? 1))
      for (const [reason, n] of kinds) metrics.backendFrameErrors.inc({ ...this.labels, reason }, n)
      const problems = errors.slice(0, MAX_LOGGED_PROBLEMS).map((e) => e.message.length > MAX_PROBLEM_CHARS ? `${e.message.slice(0, MAX_PROBLEM_CHARS)}…` : e.message)
      const total = [...kinds.values()].reduce((sum, n) => sum + n, 0)
      log.warn({ problems, more: total - problems.length }, 'backend sent a bad frame')
    }
    const forClients: ClientAction[] = []
    for (const action of items) {
      if (action.action === 'ack') this.onAck(action)
      else if (action.action === 'drain' || action.action === 'undrain') this.emit('pool', action)
      else forClients.push(action)
    }
    if (forClients.length > 0) this.emit('actions', forClients)
  }

  private onAck ({ seq }: AckAction): void {
    const { metrics, log } = this.options
    if (!this.acks) {
      metrics.backendFrameErrors.inc({ ...this.labels, reason: 'invalid_message' })
      log.warn('backend sent an ack, but backend.acks is off for this endpoint')
      return
    }
    const written = this.queue.lastWrittenSeq
    if (seq > written && seq > this.ackedSeq) {
      metrics.backendFrameErrors.inc({ ...this.labels, reason: 'invalid_message' })
      log.warn({ seq, written }, 'backend acked an event it was never sent; taking it as acking all sent')
    }
    for (const event of this.queue.releaseThrough(seq)) this.commit(event)
    this.observeQueue()
    if (this.isDrained()) this.emit('drained')
  }

  private flush (): void {
    this.flushScheduled = false
    this.lastFlush = performance.now()
    const socket = this.socket
    if (this.current !== 'up' || !socket || socket.readyState !== WebSocket.OPEN) return
    while (this.queue.unwritten > 0 && socket.bufferedAmount < HIGH_WATER_BYTES) {
      const batch = this.queue.nextBatch(MAX_FRAME_BYTES)
      // a batch with no raw message stays a text frame, as on a JSON link
      const frame = this.binary && batch.some((e) => e.raw) ? encodeBinaryFrame(batch) : encodeFrame(batch.map((e) => e.text))
      socket.send(frame, this.afterWrite)
      if (!this.acks) for (const event of this.queue.releaseWritten()) this.commit(event)
    }
    this.observeQueue()
  }

  /** Written out: keep going if the queue waited on the high-water mark, or say so if all is out. */
  private readonly afterWrite = (): void => {
    if (this.queue.unwritten > 0) {
      if (!this.flushScheduled) {
        this.flushScheduled = true
        setImmediate(() => this.flush())
      }
    } else if (this.isDrained()) {
      this.emit('drained')
    }
  }

  private commit (event: OutboundEvent): void {
    if (event.kind === 'open' && event.opened) this.roster.set(clientOf(event), event.opened)
    else if (event.kind === 'refresh' && event.opened && this.roster.has(clientOf(event))) this.roster.set(clientOf(event), event.opened)
    else if (event.kind === 'close') this.roster.delete(clientOf(event))
    if (event.seq !== undefined) this.ackedSeq = event.seq
    event.settled?.()
  }

  private isDrained (): boolean {
    return this.queue.length === 0 && (this.socket?.bufferedAmount ?? 0) === 0
  }

  private startGrace (): void {
    if (this.graceTimer) return
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined
      this.becomeUnavailable(`backend unreachable for longer than queue.graceMs (${this.options.queue.graceMs} ms)`)
    }, this.options.queue.graceMs)
  }

  /**
   * Gives up on the queued events: the endpoint's clients are closed (1013)
   * by whoever listens, so the next `sync` starts from an empty roster. A
   * link that is still open (a backend too slow to keep up) is redialled,
   * so the backend learns of the reset through that `sync`.
   */
  private becomeUnavailable (why: string): void {
    clearTimeout(this.graceTimer)
    this.graceTimer = undefined
    const dropped = this.queue.clear()
    for (const event of dropped) event.settled?.()
    this.options.metrics.droppedEvents.inc({ ...this.labels, reason: 'backend_unavailable' }, dropped.length)
    this.roster.clear()
    // as if everything sent were acknowledged: nothing older than the next sync is ever replayed
    this.ackedSeq = this.nextSeq - 1
    this.observeQueue()
    this.options.log.error({ backend: this.target, dropped: dropped.length }, `backend unavailable: ${why}; closing its clients (1013)`)
    const wasUp = this.current === 'up'
    this.setState('unavailable')
    if (wasUp) this.rws?.reconnect(1013, 'gateway reset the link')
  }

  private setState (state: LinkState): void {
    if (state === this.current) return
    this.current = state
    this.options.metrics.linkUp.set(this.memberLabels, state === 'up' ? 1 : 0)
    this.emit('state', state)
  }

  private observeQueue (): void {
    this.options.metrics.queueEvents.set(this.memberLabels, this.queue.length)
    this.options.metrics.queueBytes.set(this.memberLabels, this.queue.bytes)
  }
}
