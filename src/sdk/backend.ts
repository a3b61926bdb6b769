/**
 * `GatehouseBackend`: the server a Gatehouse gateway dials into
 * (protocol/PROTOCOL.md). It accepts any number of gateway links, turns
 * their events into `onOpen` / `onMessage` / `onClose` calls, and sends each
 * action down the link the user it names is connected through.
 */
import { EventEmitter } from 'node:events'
import type { IncomingMessage } from 'node:http'
import type { WebSocket } from 'ws'
import { pino } from 'pino'
import {
  CloseCodes, encodeActions, encodeSendRecord, fitsRecord, isBackendCloseCode, PROTOCOL_VERSION, truncateReason,
  type Action, type Claims, type DrainedEvent, type Event, type HelloEvent, type Params, type SyncEvent
} from '../../protocol/index.js'
import { ACK_EVERY_EVENTS, ACK_INTERVAL_MS, AckLedger } from './ack-ledger.js'
import { GatewayLink, type LinkListener } from './gateway-link.js'
import { LinkServer } from './link-server.js'
import { Roster, type Presence, type RosterChange } from './roster.js'
import { TaskQueue } from './task-queue.js'
import { Registration, type RegisterOptions } from './registration.js'
import type { BackendLogger } from './logger.js'

/**
 * Where an event stands in acknowledged delivery (PROTOCOL.md §5a), passed
 * to every handler. Without acks, and for opens and closes the SDK infers
 * from a `sync`, `seq` is undefined and `ack` does nothing.
 */
export interface EventDelivery {
  /** The event's `seq` from its gateway. */
  seq?: number
  /**
   * With `acks: 'manual'`: acknowledges this event and every earlier one from
   * the same gateway, so the gateway will not replay them. Call it once the
   * state they changed is stored; keeping the latest `ack` and calling it
   * after a batched write is fine. Does nothing in `'auto'` mode.
   */
  ack (): void
}

/**
 * Which connection of the user an event is about: set only for a gateway
 * endpoint with `duplicate: "allow"`, where a user may hold several
 * (PROTOCOL.md §6a); `sendToConnection` and `closeConnection` take it.
 */
export interface ConnectionInfo {
  conn?: string
}

/** What the service implements; every handler may be async, and is then awaited before the link's next event. */
export interface BackendHandlers {
  /** A player connected (or a `sync` revealed one we did not know of). */
  onOpen? (user: string, claims: Claims, params: Params, delivery: EventDelivery & ConnectionInfo): void | Promise<void>
  /**
   * A player sent a frame: `data` is its JSON value (or the text as a string).
   * When `binary`: a Buffer of its bytes from a gateway with `backend.encoding:
   * "binary"` (a view into the link frame: copy it to keep it long), base64
   * text from any other (and from an endpoint with `duplicate: "allow"`).
   */
  onMessage? (user: string, data: unknown, info: { binary: boolean, params: Params } & ConnectionInfo & EventDelivery): void | Promise<void>
  /**
   * A connected player presented a new token (PROTOCOL.md §5d): same
   * connection, new `claims` (and `exp`). Called for a `refresh` event (the
   * gateway's `backend.refresh: true`), for a refresh that moved the player
   * to another node of a cluster (close 4410 then an open marked `refresh`),
   * and for a `sync` listing the user with new claims and the same params.
   * No `onClose`/`onOpen` is called for it.
   */
  onRefresh? (user: string, claims: Claims, info: { params: Params } & ConnectionInfo & EventDelivery): void | Promise<void>
  /** A player's connection ended; exactly once per `onOpen` (per connection). Codes the SDK infers itself: see `InferredCloses`. */
  onClose? (user: string, code: number, reason: string, info: { params: Params } & ConnectionInfo & EventDelivery): void | Promise<void>
  /** After `drain()`: this gateway's pool holds nothing on this service any more (docs/pools.md); once every gateway has said so, it may exit. */
  onDrained? (info: LinkInfo): void | Promise<void>
}

export interface BackendOptions {
  /** The token gateways must present as `Authorization: Bearer` (`backend.token` in the gateway's config). `listen()` refuses to start without one unless `allowUnauthenticated` is set. */
  token?: string
  /**
   * Without a `token`: accept links from any peer, who can then claim to be
   * any user. For local development only; `listen()` logs a warning.
   * @default false
   */
  allowUnauthenticated?: boolean
  /**
   * How long the users of a dropped link are kept, waiting for the same
   * gateway to reconnect and `sync`, before they are closed (1006). Match the
   * gateway's `queue.graceMs`.
   * @default 30000
   */
  linkGraceMs?: number
  /**
   * How long a user whom a node of a gateway cluster closed as refreshed
   * (4410) waits for their `open` on another node of it, to become one
   * `onRefresh` (PROTOCOL.md §5d); past it they get `onClose` 4410. Their
   * sends meanwhile still reach them (any node of the cluster forwards).
   * @default 10000
   */
  moveGraceMs?: number
  /** Ping period on each link; a gateway that misses a pong is dropped. 0 turns pings off. @default 15000 */
  pingIntervalMs?: number
  /** Largest frame accepted from a gateway. @default 16777216 */
  maxPayloadBytes?: number
  /** @default a pino logger at `info` */
  logger?: BackendLogger
  /**
   * How events are acknowledged when a gateway's `hello` says `acks: true`
   * (PROTOCOL.md §5a). `'auto'`: once their handlers have returned (a throw
   * counts as returned). `'manual'`: only through each handler's
   * `delivery.ack()`, for a service that must store state first. Either way
   * acks leave at most every 100 ms, or at once after 1,000 events.
   * @default 'auto'
   */
  acks?: 'auto' | 'manual'
}

export interface SendOptions {
  /**
   * Deliver as a binary frame: `data` is a base64 string. Buffers and
   * Uint8Arrays are always binary, and travel raw to gateways with
   * `backend.encoding: "binary"` (PROTOCOL.md §2a), as base64 to others.
   */
  binary?: boolean
}

/** Counters a service can export or assert on. */
export interface BackendStats {
  /** Frames (or messages inside a batch) from a gateway that were not valid. */
  badFrames: number
  /** The same, by kind where it is known (`binary_truncated`, `binary_bad_length`, ... PROTOCOL.md §2a; `invalid_json`, `invalid_message`). */
  badFramesByKind: Record<string, number>
  /** Actions not sent: the user is not connected, their link is down, or the data is not JSON. */
  droppedActions: number
  /** Events about a connection we do not track (a late message from a replaced user, say). */
  strayEvents: number
  /** Handlers that threw or rejected. */
  handlerErrors: number
  /** Upgrade requests refused for a missing or wrong token. */
  refusedLinks: number
  /** Replayed events this process had already taken before a link blip, skipped (PROTOCOL.md §5a). */
  duplicatesSkipped: number
}

export interface LinkInfo {
  gateway: string
  endpoint: string
}

export interface BackendEvents {
  /** A gateway said `hello`. */
  link: [LinkInfo]
  /** A gateway's `sync` has been applied (and its handlers have run). */
  synced: [LinkInfo & { users: number, seq?: number }]
  /** A link closed; its users are kept for `linkGraceMs`. */
  linkClosed: [{ gateway?: string, code: number }]
  badFrame: [{ gateway?: string, problem: string, kind?: string }]
  handlerError: [{ handler: string, user: string, error: unknown }]
  /** As `onDrained`. */
  drained: [LinkInfo]
}

export class GatehouseBackend extends EventEmitter<BackendEvents> {
  readonly stats: BackendStats = { badFrames: 0, badFramesByKind: {}, droppedActions: 0, strayEvents: 0, handlerErrors: 0, refusedLinks: 0, duplicatesSkipped: 0 }
  private handlers: BackendHandlers = {}
  private readonly roster = new Roster<GatewayLink>({
    sameCluster: (a, b) => a.cluster !== undefined && a.cluster === b.cluster,
    isOpen: (link) => link.isOpen
  })
  private readonly links = new Map<GatewayLink, TaskQueue>()
  /** The latest link of each gateway (node id + endpoint), so a reconnect inherits its users. */
  private readonly latest = new Map<string, GatewayLink>()
  /** Links that closed, each keeping its users until its `linkGraceMs` timer fires. */
  private readonly graceTimers = new Map<GatewayLink, NodeJS.Timeout>()
  /** The ack ledger per gateway (node id + endpoint), kept across the links of one session; and the links that use it. */
  private readonly ledgers = new Map<string, AckLedger>()
  private readonly ackedLinks = new Map<GatewayLink, AckLedger>()
  private readonly ackTimers = new Map<string, NodeJS.Timeout>()
  private readonly manualAcks: boolean
  private readonly server: LinkServer
  private readonly log: BackendLogger
  private readonly linkGraceMs: number
  private readonly moveGraceMs: number
  /** Users closed as refreshed by a cluster node, each waiting `moveGraceMs` for its open on another. */
  private readonly moveTimers = new Set<NodeJS.Timeout>()
  private readonly pingIntervalMs: number
  private readonly token?: string
  private readonly allowUnauthenticated: boolean
  private stopped = false
  private readonly registrations = new Set<Registration>()

  constructor (options: BackendOptions = {}, handlers: BackendHandlers = {}) {
    super()
    this.handlers = handlers
    this.log = options.logger ?? pino({ name: 'gatehouse-backend' })
    this.linkGraceMs = options.linkGraceMs ?? 30000
    this.moveGraceMs = options.moveGraceMs ?? 10000
    this.pingIntervalMs = options.pingIntervalMs ?? 15000
    this.manualAcks = options.acks === 'manual'
    // an empty token (an unset variable expanded to '') would refuse everyone while looking configured
    this.token = options.token === '' ? undefined : options.token
    this.allowUnauthenticated = options.allowUnauthenticated === true
    this.server = new LinkServer({
      token: this.token,
      maxPayloadBytes: options.maxPayloadBytes ?? 16 * 1024 * 1024,
      onLink: (socket) => this.accept(socket),
      onRefused: (request) => this.refused(request)
    })
  }

  /** Sets the service's handlers; for services that need the backend (to send) before they exist. */
  handle (handlers: BackendHandlers): this {
    this.handlers = handlers
    return this
  }

  /**
   * Starts accepting gateway links; resolves with the bound port (useful with
   * port 0). Rejects without a `token`, unless `allowUnauthenticated` is set.
   */
  async listen ({ port = 0, host = '127.0.0.1' }: { port?: number, host?: string } = {}): Promise<{ port: number, url: string }> {
    if (this.token === undefined) {
      // whoever reaches an open backend can send `open` for any user and act as them
      if (!this.allowUnauthenticated) throw new Error('GatehouseBackend: no `token` set, so any peer could connect and act as any user. Pass the gateway\'s `backend.token` as `token`, or `allowUnauthenticated: true` for local development only')
      this.log.warn({ allowUnauthenticated: true }, 'gatehouse backend accepts links without a token: any peer can act as any user (development only)')
    }
    const bound = await this.server.listen(port, host)
    return { port: bound, url: `ws://${host.includes(':') ? `[${host}]` : host}:${bound}` }
  }

  /** Closes every link with 1001 and stops listening. Services see no `onClose` for this. */
  async stop (): Promise<void> {
    this.stopped = true
    // deregistered first, so the gateways move this service's keys before its links close
    await Promise.all([...this.registrations].map(async (r) => await r.stop()))
    for (const timer of this.graceTimers.values()) clearTimeout(timer)
    this.graceTimers.clear()
    for (const timer of this.moveTimers) clearTimeout(timer)
    this.moveTimers.clear()
    // what is processed is acked before the links close, so the next process is not handed it again
    for (const key of this.ledgers.keys()) this.flushAck(key)
    for (const link of this.links.keys()) link.close(CloseCodes.GOING_AWAY.code, 'backend shutting down')
    await this.server.close()
  }

  /**
   * Asks every connected gateway to route no new key (match, room) to this
   * service, for a rolling deploy (docs/pools.md); its current ones stay.
   * Each gateway answers with `onDrained` once it holds nothing here.
   */
  drain (): void {
    for (const link of this.links.keys()) link.write(JSON.stringify({ action: 'drain' } satisfies Action))
  }

  /**
   * Joins a gateway's pool at run time (docs/pools.md): registers `url` as
   * member `id` of `endpoint` and renews the lease until the registration's
   * `stop()`, or this backend's. Failures are logged and retried with backoff.
   */
  register (options: RegisterOptions): Registration {
    const registration = new Registration(options, this.log)
    this.registrations.add(registration)
    registration.start()
    return registration
  }

  /** Takes back a `drain()`: new keys may come here again. */
  undrain (): void {
    for (const link of this.links.keys()) link.write(JSON.stringify({ action: 'undrain' } satisfies Action))
  }

  /** Connected users, across every gateway. */
  users (): string[] {
    return this.roster.users()
  }

  /** A connected user's claims and path params (of their oldest connection, when they have several), or undefined. */
  connection (user: string): { claims: Claims, params: Params, gateway?: string } | undefined {
    const presence = this.roster.get(user)
    return presence && { claims: presence.claims, params: presence.params, gateway: presence.link.gateway }
  }

  /** Every connection of a user, oldest first (one, without `conn`, unless the endpoint has `duplicate: "allow"`). */
  connections (user: string): Array<{ conn?: string, claims: Claims, params: Params, gateway?: string }> {
    return this.roster.connectionsOf(user).map((p) => ({ ...(p.conn === undefined ? {} : { conn: p.conn }), claims: p.claims, params: p.params, gateway: p.link.gateway }))
  }

  /** Sends `data` to one connection (its `conn`, `duplicate: "allow"` endpoints), down its link. True when sent. */
  sendToConnection (conn: string, data: unknown, options: SendOptions = {}): boolean {
    const presence = this.roster.connection(conn)
    if (!presence) {
      this.drop(1, [], 'send for a connection that is not open')
      return false
    }
    const body = payload(data, options)
    if (!body) {
      this.drop(1, [presence.user], 'binary send whose data is neither bytes nor a base64 string')
      return false
    }
    return this.write(presence.link, { action: 'send', conn, ...body }, 1)
  }

  /** Asks the gateway to close one connection (its `conn`); `onClose` follows as for `close`. True when asked. */
  closeConnection (conn: string, code = 1000, reason = ''): boolean {
    const presence = this.roster.connection(conn)
    if (!presence) {
      this.drop(1, [], 'close for a connection that is not open')
      return false
    }
    return this.write(presence.link, { action: 'close', conn, code: this.closeCode(code), reason: truncateReason(reason) }, 1)
  }

  /** Sends `data` to one or several users (every connection of each), each down the links they are connected through. Returns how many users were sent to. */
  send (to: string | readonly string[], data: unknown, options: SendOptions = {}): number {
    const users = typeof to === 'string' ? [to] : to
    const { byLink, missing } = this.roster.group(users)
    this.drop(missing.length, missing, 'send for a user who is not connected')
    const body = payload(data, options)
    if (!body) {
      this.drop(users.length, users, 'binary send whose data is neither bytes nor a base64 string')
      return 0
    }
    let sent = 0
    for (const [link, list] of byLink) {
      if (this.write(link, { action: 'send', ...target(list), ...body }, list.length)) sent += list.length
    }
    return sent
  }

  /**
   * Sends `data` to every client of the endpoint: `all` down each gateway
   * alone. A cluster would carry one `all` to every node, but from one link
   * it could overtake what other links already carry; so there each user's
   * own link names its users, and the broadcast keeps its place among their
   * other actions.
   */
  broadcast (data: unknown, options: SendOptions = {}): void {
    const body = payload(data, options)
    if (!body) {
      this.drop(1, [], 'binary broadcast whose data is neither bytes nor a base64 string')
      return
    }
    for (const link of this.links.keys()) {
      if (link.cluster === undefined) this.write(link, { action: 'send', all: true, ...body }, 1)
    }
    for (const [link, users] of this.roster.group(this.roster.users()).byLink) {
      if (link.cluster !== undefined) this.write(link, { action: 'send', ...target(users), ...body }, users.length)
    }
  }

  /**
   * Asks the gateway to close users' connections; `onClose` follows when the
   * gateway reports it. `code` is 1000 or 4000-4999 (anything else becomes
   * 1000, logged); `reason` is cut to 123 bytes.
   */
  close (to: string | readonly string[], code = 1000, reason = ''): number {
    code = this.closeCode(code)
    const users = typeof to === 'string' ? [to] : to
    const { byLink, missing } = this.roster.group(users)
    this.drop(missing.length, missing, 'close for a user who is not connected')
    let closed = 0
    for (const [link, list] of byLink) {
      if (this.write(link, { action: 'close', ...target(list), code, reason: truncateReason(reason) }, list.length)) closed += list.length
    }
    return closed
  }

  private closeCode (code: number): number {
    if (isBackendCloseCode(code)) return code
    this.log.warn({ code }, 'close code must be 1000 or 4000-4999; using 1000')
    return 1000
  }

  private accept (socket: WebSocket): void {
    const link = new GatewayLink(socket, this.pingIntervalMs, this.listener)
    this.links.set(link, new TaskQueue((err) => this.log.error({ err, link: link.label }, 'gatehouse backend: internal error')))
    this.log.debug({ link: link.label }, 'gateway link accepted')
  }

  private refused (request: IncomingMessage): void {
    this.stats.refusedLinks++
    // the header itself is never logged: it may hold a near-miss of the real token
    this.log.warn({ remoteAddress: request.socket.remoteAddress, hasAuthorization: request.headers.authorization !== undefined }, 'gateway link refused: missing or wrong bearer token')
  }

  private readonly listener: LinkListener = {
    events: (link, events) => {
      this.links.get(link)?.pushAll(events.map((event) => () => this.dispatch(link, event)))
    },
    badFrame: (link, problem, kind, count = 1) => {
      this.stats.badFrames += count
      if (kind !== undefined) this.stats.badFramesByKind[kind] = (this.stats.badFramesByKind[kind] ?? 0) + count
      this.log.warn({ link: link.label, problem, kind }, 'gateway sent a bad frame; skipped')
      this.emit('badFrame', { gateway: link.gateway, problem, ...(kind === undefined ? {} : { kind }) })
    },
    closed: (link, code) => {
      // queued behind the link's pending events, so they are handled first
      this.links.get(link)?.push(() => this.linkClosed(link, code))
    }
  }

  private dispatch (link: GatewayLink, event: Event): void | Promise<void> {
    if (event.event === 'hello') return this.hello(link, event)
    // outside the sequence of seqs: it says nothing about any client
    if (event.event === 'drained') return this.drained(link)
    const ledger = this.ackedLinks.get(link)
    return ledger ? this.deliverAcked(link, ledger, event) : this.route(link, event, UNSEQUENCED)
  }

  private drained (link: GatewayLink): void | Promise<void> {
    const info = { gateway: link.gateway ?? '', endpoint: link.endpoint ?? '' }
    this.log.info(info, 'gateway says this service is drained')
    this.emit('drained', info)
    return this.call('onDrained', '', () => this.handlers.onDrained?.(info))
  }

  private route (link: GatewayLink, event: Exclude<Event, HelloEvent | DrainedEvent>, delivery: EventDelivery): void | Promise<void> {
    switch (event.event) {
      case 'sync':
        return this.synced(link, event.users.length, event.seq, this.apply(this.roster.sync(link, event.users), delivery))
      case 'open':
        return this.apply(this.roster.open(link, event.user, event.claims, event.params, event.conn, event.refresh === true), delivery)
      case 'refresh': {
        const changes = this.roster.refresh(link, event.user, event.claims, event.conn)
        return changes.length > 0 ? this.apply(changes, delivery) : this.stray(link, event)
      }
      case 'message':
        if (!this.roster.holds(link, event.user, event.conn)) return this.stray(link, event)
        return this.call('onMessage', event.user, () => this.handlers.onMessage?.(event.user, event.data, { binary: event.binary === true, params: event.params, ...connOf(event), ...delivery }))
      case 'close': {
        const changes = this.roster.close(link, event.user, event.code, event.reason, event.conn)
        return changes.length > 0 ? this.apply(changes, delivery) : this.stray(link, event)
      }
    }
  }

  /** Emits `synced` once the handlers a sync triggered have run; `seq` is the sync's, with acks. */
  private synced (link: GatewayLink, users: number, seq: number | undefined, applied: void | Promise<void>): void | Promise<void> {
    const done = (): void => {
      if (link.gateway !== undefined) this.emit('synced', { gateway: link.gateway, endpoint: link.endpoint ?? '', users, ...(seq === undefined ? {} : { seq }) })
    }
    return applied ? applied.then(done) : done()
  }

  /** An event on a link whose gateway said `acks: true` (PROTOCOL.md §5a). */
  private deliverAcked (link: GatewayLink, ledger: AckLedger, event: Exclude<Event, HelloEvent | DrainedEvent>): void | Promise<void> {
    const key = identity(link)
    if (this.latest.get(key) !== link) {
      // a superseded link's leftovers: the gateway replays whatever of them was not acked on its new link
      return this.stray(link, { event: event.event, user: 'user' in event ? event.user : '' })
    }
    if (event.seq === undefined) return this.listener.badFrame(link, `${event.event} without seq on a link with acks`)
    if (event.event === 'sync') return this.syncAcked(link, ledger, event as SyncEvent & { seq: number })
    const seq = event.seq
    const arrival = ledger.receive(seq)
    if (arrival === 'backwards') return this.listener.badFrame(link, `${event.event} seq ${seq} is not above the link's previous seq`)
    if (arrival === 'replayed') {
      this.stats.duplicatesSkipped++
      if (!this.manualAcks) ledger.completed(seq)
      this.scheduleAck(key)
      const roster = ledger.replayed(seq, event)
      return roster && this.synced(link, roster.users.length, roster.seq, this.apply(this.roster.sync(link, roster.users)))
    }
    const info: EventDelivery = { seq, ack: () => this.manualAck(key, ledger, seq) }
    const done = (): void => {
      if (!this.manualAcks) ledger.completed(seq)
      this.scheduleAck(key)
    }
    const run = (): void | Promise<void> => {
      const handled = this.route(link, event, info)
      return handled ? handled.then(done) : done()
    }
    // a gap where the rest of the replay should have been: settle the pending roster first
    const roster = ledger.takePending()
    const settled = roster && this.synced(link, roster.users.length, roster.seq, this.apply(this.roster.sync(link, roster.users)))
    return settled ? settled.then(run) : run()
  }

  private syncAcked (link: GatewayLink, ledger: AckLedger, event: SyncEvent & { seq: number }): void | Promise<void> {
    const users = ledger.sync(event.seq, event.users)
    // with P > S the roster waits for the replay (AckLedger.replayed); `synced` is emitted then
    if (users) return this.route(link, { event: 'sync', users: [...users], seq: event.seq }, UNSEQUENCED)
  }

  private hello (link: GatewayLink, hello: HelloEvent): void | Promise<void> {
    if (hello.protocol !== PROTOCOL_VERSION) {
      this.log.error({ link: link.label, protocol: hello.protocol, supported: PROTOCOL_VERSION }, 'gateway speaks another protocol version; refusing the link')
      link.close(CloseCodes.PROTOCOL_ERROR.code, `unsupported protocol version ${hello.protocol}; this backend speaks ${PROTOCOL_VERSION}`)
      return
    }
    link.gateway = hello.gateway
    link.endpoint = hello.endpoint
    link.cluster = hello.cluster
    link.member = hello.member
    const endpoints = new Set([...this.links.keys()].map((l) => l.endpoint).filter((e) => e !== undefined))
    if (endpoints.size > 1) {
      // users are keyed by id alone: one user on two endpoints would look like one connection moving between links
      this.log.warn({ endpoints: [...endpoints] }, 'one backend serves several gateway endpoints; give each endpoint its own backend')
    }
    const key = identity(link)
    const previous = this.latest.get(key)
    this.latest.set(key, link)
    if (previous && previous !== link) {
      // the same gateway reconnected: its users carry over, and the `sync` that follows settles who is still there
      clearTimeout(this.graceTimers.get(previous))
      this.graceTimers.delete(previous)
      this.roster.moveLink(previous, link)
      previous.terminate()
    }
    this.log.info({ gateway: hello.gateway, endpoint: hello.endpoint, session: hello.session, resumed: previous !== undefined, acks: hello.acks === true }, 'gateway link up')
    this.emit('link', { gateway: hello.gateway, endpoint: hello.endpoint })
    if (hello.acks !== true) {
      this.forgetLedger(key)
      return
    }
    const ledger = this.ledgerFor(key, hello)
    this.ackedLinks.set(link, ledger)
    ledger.attach()
    // the old link's handlers finish before the replay on this one is weighed against them
    if (previous && previous !== link) return this.links.get(previous)?.whenIdle()
  }

  /**
   * The ack ledger of the gateway's session. Another session is another
   * gateway process under the same node id: its seq starts again at 1, and
   * nothing it sends is a replay of what the last one sent.
   */
  private ledgerFor (key: string, hello: HelloEvent): AckLedger {
    const known = this.ledgers.get(key)
    if (known?.session === hello.session) return known
    if (known) this.log.info({ gateway: hello.gateway, endpoint: hello.endpoint }, 'new gateway session: its sequence starts afresh')
    this.forgetLedger(key)
    const ledger = new AckLedger(hello.session)
    this.ledgers.set(key, ledger)
    return ledger
  }

  /** Acknowledges up to `seq` on the gateway's latest link, when `ledger` is still that gateway's. */
  private manualAck (key: string, ledger: AckLedger, seq: number): void {
    if (!this.manualAcks || this.ledgers.get(key) !== ledger) return
    ledger.allow(seq)
    this.scheduleAck(key)
  }

  /** An ack within ACK_INTERVAL_MS, or at once when ACK_EVERY_EVENTS are waiting. */
  private scheduleAck (key: string): void {
    const backlog = this.ledgers.get(key)?.backlog() ?? 0
    if (backlog >= ACK_EVERY_EVENTS) return this.flushAck(key)
    if (backlog === 0 || this.ackTimers.has(key)) return
    const timer = setTimeout(() => this.flushAck(key), ACK_INTERVAL_MS)
    timer.unref()
    this.ackTimers.set(key, timer)
  }

  private flushAck (key: string): void {
    clearTimeout(this.ackTimers.get(key))
    this.ackTimers.delete(key)
    const link = this.latest.get(key)
    const seq = link?.isOpen === true ? this.ledgers.get(key)?.takeAck() : undefined
    // on a link that is down, the backlog waits: the next sync says what the gateway got
    if (link && seq !== undefined) link.write(JSON.stringify({ action: 'ack', seq } satisfies Action))
  }

  private forgetLedger (key: string): void {
    clearTimeout(this.ackTimers.get(key))
    this.ackTimers.delete(key)
    this.ledgers.delete(key)
  }

  private linkClosed (link: GatewayLink, code: number): void {
    this.links.delete(link)
    this.ackedLinks.delete(link)
    this.emit('linkClosed', { gateway: link.gateway, code })
    if (this.stopped) return
    const key = identity(link)
    if (link.gateway === undefined || this.latest.get(key) !== link) {
      // never identified itself, or already replaced by a newer link of its gateway
      void this.apply(this.roster.dropLink(link))
      return
    }
    this.log.warn({ gateway: link.gateway, code, graceMs: this.linkGraceMs }, 'gateway link down; keeping its users until it reconnects')
    const timer = setTimeout(() => {
      this.graceTimers.delete(link)
      if (this.latest.get(key) === link) {
        this.latest.delete(key)
        // the gateway gives up after the same grace: its next sync is empty and replays nothing
        this.forgetLedger(key)
      }
      void this.apply(this.roster.dropLink(link))
    }, this.linkGraceMs)
    timer.unref()
    this.graceTimers.set(link, timer)
  }

  /** Tells the service about roster changes, in order, waiting on async handlers. */
  private apply (changes: readonly RosterChange<GatewayLink>[], delivery = UNSEQUENCED): void | Promise<void> {
    for (let i = 0; i < changes.length; i++) {
      const result = this.announce(changes[i], delivery)
      if (result !== undefined) return result.then(() => this.apply(changes.slice(i + 1), delivery))
    }
  }

  private announce (change: RosterChange<GatewayLink>, delivery: EventDelivery): void | Promise<void> {
    const { user, claims, params, link, conn } = change.presence
    const which = connOf(change.presence)
    if (change.kind === 'open') return this.call('onOpen', user, () => this.handlers.onOpen?.(user, claims, params, conn === undefined ? delivery : { ...delivery, conn }))
    if (change.kind === 'refresh') return this.call('onRefresh', user, () => this.handlers.onRefresh?.(user, claims, { params, ...which, ...delivery }))
    if (change.kind === 'moving') return this.awaitMove(change.presence)
    if (change.displaced) this.write(link, { action: 'close', ...(conn === undefined ? { user } : { conn }), code: change.code, reason: change.reason }, 1)
    return this.call('onClose', user, () => this.handlers.onClose?.(user, change.code, change.reason, { params, ...which, ...delivery }))
  }

  /** A user closed as refreshed by a cluster node: their open on another node is a refresh; past `moveGraceMs`, the close is theirs. */
  private awaitMove (presence: Presence<GatewayLink>): void {
    const timer = setTimeout(() => {
      this.moveTimers.delete(timer)
      void this.apply(this.roster.settleMove(presence))
    }, this.moveGraceMs)
    timer.unref()
    this.moveTimers.add(timer)
  }

  /** Runs a handler; a throw or a rejection is logged and counted, never passed on. */
  private call (handler: string, user: string, run: () => unknown): void | Promise<void> {
    try {
      const result = run()
      if (isThenable(result)) return Promise.resolve(result).then(() => undefined, (error: unknown) => this.handlerFailed(handler, user, error))
    } catch (error) {
      this.handlerFailed(handler, user, error)
    }
  }

  private handlerFailed (handler: string, user: string, error: unknown): void {
    this.stats.handlerErrors++
    this.log.error({ err: error, handler, user }, 'handler failed')
    this.emit('handlerError', { handler, user, error })
  }

  private stray (link: GatewayLink, event: { event: string, user: string }): void {
    this.stats.strayEvents++
    this.log.debug({ link: link.label, event: event.event, user: event.user }, 'event for a connection this backend does not track; ignored')
  }

  /** Encodes and queues one action; false (counted as `count` dropped) when it cannot go out. */
  private write (link: GatewayLink, action: Action, count: number): boolean {
    if (!link.isOpen) {
      this.drop(count, [], 'action for users whose gateway link is down')
      return false
    }
    let encoded: string | Buffer
    try {
      encoded = encodeAction(link, action)
    } catch (err) {
      this.drop(count, [], `action data is not JSON: ${(err as Error).message}`)
      return false
    }
    link.write(encoded)
    return true
  }

  private drop (count: number, users: readonly string[], why: string): void {
    if (count === 0) return
    this.stats.droppedActions += count
    this.log.debug({ users, count }, `${why}; dropped`)
  }
}

/** What handlers get for an event outside acknowledged delivery. */
const UNSEQUENCED: EventDelivery = Object.freeze({ ack: () => {} })

/** A gateway's identity: its node id and endpoint. A reconnect with the same one carries its users over, and its ack ledger within one session. */
/**
 * A gateway's link to one member: one process may be several members of a
 * pool (two URLs reaching it), and each has its own link and seqs; a link
 * of another member is not a reconnect of this one.
 */
function identity (link: GatewayLink): string {
  return `${link.gateway ?? ''}\n${link.endpoint ?? ''}\n${link.member ?? ''}`
}

/** `{ conn }` for an event of an `allow` endpoint, else nothing: handlers of other endpoints see what they always saw. */
function connOf (entry: { conn?: string }): ConnectionInfo {
  return entry.conn === undefined ? {} : { conn: entry.conn }
}

function target (users: readonly string[]): { user: string } | { users: string[] } {
  return users.length === 1 ? { user: users[0] } : { users: [...users] }
}

/**
 * `data` as it travels: bytes stay bytes with `binary: true` (each link
 * encodes them its way, `encodeAction`); undefined becomes null (JSON has no
 * undefined). Undefined when `binary` is asked for with something that is
 * not base64 text.
 */
function payload (data: unknown, options: SendOptions): { data: unknown, binary?: true } | undefined {
  if (data instanceof Uint8Array) return { data, binary: true }
  if (options.binary === true) return typeof data === 'string' ? { data, binary: true } : undefined
  return { data: data === undefined ? null : data }
}

/**
 * One action for `link`: bytes as a SEND record on a binary link, text as a
 * TEXT_SEND record on a raw one (PROTOCOL.md §2a), else as JSON, bytes in
 * base64. A record names no connection: a send to a `conn` goes as JSON (§6a).
 */
function encodeAction (link: GatewayLink, action: Action): string | Buffer {
  if (action.action !== 'send') return encodeActions([action])
  const text = action.binary !== true
  const users = 'all' in action ? [] : 'user' in action ? [action.user] : 'users' in action ? action.users : undefined
  const recorded = (text ? link.rawText : link.binary) && users?.every((user) => fitsRecord(user)) === true
  if (recorded) return encodeSendRecord('all' in action ? { all: true } : { users }, text ? textBytes(action.data) : binaryBytes(action.data), text)
  if (!(action.data instanceof Uint8Array)) return encodeActions([action])
  const bytes = action.data
  return encodeActions([{ ...action, data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') }])
}

/** A binary send's bytes: a Uint8Array as it is, base64 text (`send(..., { binary: true })`) decoded, as the gateway would. */
function binaryBytes (data: unknown): Uint8Array {
  return data instanceof Uint8Array ? data : Buffer.from(String(data), 'base64')
}

/** A text send's frame, as the gateway would make it of JSON `data`: a string as it is, any other value as its JSON. */
function textBytes (data: unknown): Buffer {
  const text = typeof data === 'string' ? data : JSON.stringify(data)
  // JSON.stringify gives undefined for a function or a symbol: nothing a player could be sent
  if (typeof text !== 'string') throw new TypeError(`${typeof data} has no JSON`)
  return Buffer.from(text)
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === 'function'
}
