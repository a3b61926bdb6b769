/**
 * One endpoint's backend pool (docs/pools.md, protocol/PROTOCOL.md §10): a
 * link per member, and every client routed to one member by its routing key.
 * To the relay it is the event sink and the source of actions and state,
 * exactly as one link was; a `backend.url` is a pool of one, so there is one
 * code path.
 *
 * - A key goes to the best member by weighted rendezvous hashing when its
 *   first client opens, and stays there while it has clients plus `lingerMs`
 *   (assignments.ts).
 * - A client's `close` on one member is committed before its next events go
 *   to another (a player moving to another match).
 * - A member down past `failoverMs` is out: its keys move to the members
 *   that are up, which get `open` for its committed clients, then every
 *   event it never committed, in order. With no member up the keys wait,
 *   as they would for a single backend.
 * - `drain`/`undrain` from a member; `drained` once a draining one holds no key.
 * - Members join and leave at run time (`join`, `leave`: routes/admin.ts):
 *   a member joining moves no key; one leaving hands its keys over as one
 *   that is out, at once.
 * - Where assignments and failover decisions live is the directory's
 *   (directory.ts): this process for a node alone, the cluster's store for
 *   several nodes. There a key's first `open` here waits for the store's
 *   answer, and the events behind it (per client, in order) with it.
 */
import { EventEmitter } from 'node:events'
import type { FastifyBaseLogger } from 'fastify'
import { DRAINED_EVENT, encodeOpen, type ClientAction, type PoolAction, type SyncUser } from '../../protocol/index.js'
import type { BackendConfig, PoolMemberConfig } from '../config/schema.js'
import type { GatewayMetrics, MemberLoadSample } from '../metrics.js'
import type { BackendLink, LinkState } from '../backend-link/link.js'
import { clientOf, type OutboundEvent } from '../backend-link/event-queue.js'
import { Assignments } from './assignments.js'
import { LocalDirectory, type PoolDirectory } from './directory.js'
import { pick } from './hrw.js'
import { routeKeyOf, type RouteKey } from './routing-key.js'

/** A member as the metrics, `/readyz` and the docs name it. */
export type MemberState = 'up' | 'down' | 'draining' | 'out'

/** One member in the pool listing (GET /_gatehouse/pools/<endpoint>). */
export interface MemberReport {
  id: string
  /** Where its link dials, without credentials or query. */
  url: string
  weight: number
  state: MemberState
  keys: number
  clients: number
}
const MEMBER_STATES: readonly MemberState[] = ['up', 'down', 'draining', 'out']

export interface PoolEvents {
  actions: [ClientAction[]]
  /** The endpoint's state: `up` while any member is, `unavailable` once every one is. */
  state: [LinkState]
  overShare: [client: string]
  /** A member gave up (`queue.graceMs`, or its queue filled) while others serve: close these clients (1013). */
  unavailable: [clients: string[]]
}

export interface PoolOptions {
  endpoint: string
  backend: Readonly<BackendConfig>
  members: readonly PoolMemberConfig[]
  /** Builds the link of one member. */
  dial (member: PoolMemberConfig): BackendLink
  /** `queue.maxClientBytes`: also the bound on a client's messages waiting for its previous `close` on another member. */
  maxClientBytes: number
  /** Where assignments and failover decisions live (default: this process). */
  directory?: PoolDirectory
  metrics: GatewayMetrics
  log: FastifyBaseLogger
}

interface Member {
  id: string
  weight: number
  link: BackendLink
  draining: boolean
  /** Down past `failoverMs`: gets no new key until it is back. */
  out: boolean
  /** `drained` was written for the current drain. */
  drainedSent: boolean
  /** Waiting for the link to commit its last events, or to come back, before writing `drained`. */
  awaitingIdle: boolean
  /** Left the pool (`leave`): its keys go to the others even while none of them is up. */
  left: boolean
  failoverTimer?: NodeJS.Timeout
}

type Keyed = OutboundEvent & { key: string }

/** A client's `close`, written to `member` and not yet committed; the client's events for other members wait in `waiting`. */
interface Gate {
  member: Member
  waiting: Keyed[]
  /** Bytes of the waiting messages, held to `queue.maxClientBytes` as a link's queue holds them. */
  waitingBytes: number
}

/** Events waiting for a key's member from the directory, in arrival order, with what each client has waiting. */
interface Backlog {
  events: OutboundEvent[]
  /** Per client: events waiting, and the bytes of its messages among them (held to `queue.maxClientBytes`). */
  clients: Map<string, { events: number, bytes: number }>
}

export class BackendPool extends EventEmitter<PoolEvents> {
  private readonly members = new Map<string, Member>()
  private readonly assignments: Assignments
  private readonly directory: PoolDirectory
  /** Keys whose member the directory has not answered yet. */
  private readonly holding = new Set<string>()
  /** Answers of the directory not yet taken by their key's first `open`. */
  private readonly answers = new Map<string, string>()
  private readonly backlog: Backlog = { events: [], clients: new Map() }
  private closed = false
  private readonly routeKey: RouteKey
  /** Each connected client's routing key, by `clientOf` (the user, or the connection under `allow`). */
  private readonly clients = new Map<string, string>()
  private readonly gates = new Map<string, Gate>()
  private current: LinkState = 'connecting'
  private readonly labels: { endpoint: string }
  private started = false
  /** Stops the pool's loads showing on /metrics. */
  private readonly unpublishLoads: () => void

  constructor (private readonly options: PoolOptions) {
    super()
    const { endpoint, backend, members } = options
    this.labels = { endpoint }
    this.routeKey = routeKeyOf(backend.route)
    this.directory = options.directory ?? new LocalDirectory(backend.lingerMs)
    this.directory.onOut((member) => { void this.rehome(member) })
    this.unpublishLoads = options.metrics.addLoadSource(() => this.loads())
    this.assignments = new Assignments({
      lingerMs: this.directory.localLingerMs,
      changed: (id) => {
        // told `drained`, then given a key (every member draining): it is told again once that key is gone
        const member = this.members.get(id)
        if (member !== undefined && member.drainedSent && this.assignments.loadOf(id).keys > 0) member.drainedSent = false
      },
      released: (key, id) => {
        this.directory.released(key)
        const member = this.members.get(id)
        if (member) this.checkDrained(member)
      }
    })
    for (const config of members) this.add(config)
  }

  get state (): LinkState {
    return this.current
  }

  /** Where the members' links dial, without credentials or query, for logs. */
  get target (): string {
    return [...this.members.values()].map((m) => m.link.target).join(', ')
  }

  /** Each member's state, by id. */
  memberStates (): Record<string, MemberState> {
    return Object.fromEntries([...this.members.values()].map((m) => [m.id, this.stateOf(m)]))
  }

  /** Each member with its state and load, in the order they joined. */
  describe (): MemberReport[] {
    return [...this.members.values()].map((m) => ({ id: m.id, url: m.link.target, weight: m.weight, ...this.assignments.loadOf(m.id), state: this.stateOf(m) }))
  }

  /**
   * A member joins at run time, or changes its weight (new keys only). It
   * gets keys it wins from now on; no assigned key moves to it.
   */
  join (config: PoolMemberConfig): void {
    const known = this.members.get(config.id)
    if (known && !known.left) {
      known.weight = config.weight
      return
    }
    const member = this.add(config)
    if (!this.started) return
    member.link.start()
    this.watchDown(member)
  }

  /**
   * A member leaves at run time: its keys, clients and uncommitted events go
   * to the others as in a failover, at once (in a cluster: to the members
   * the store names, once it answered); then its link closes.
   */
  leave (id: string): void {
    const member = this.members.get(id)
    if (member === undefined) return
    clearTimeout(member.failoverTimer)
    member.failoverTimer = undefined
    member.out = true
    member.left = true
    if (!this.directory.shared) {
      this.retire(member)
      return
    }
    // until the store answers, its keys stay on it (their events queue on its link) and it gets no new one
    const keys = this.assignments.keysOf(id)
    this.directory.assigned(keys).then((shared) => {
      const moves = new Map<string, Member>()
      keys.forEach((key, i) => {
        const heir = shared[i] === undefined ? undefined : this.members.get(shared[i] as string)
        if (heir !== undefined && this.assignments.memberOf(key) === id) moves.set(key, heir)
      })
      return moves
    }, () => new Map<string, Member>()).then((moves) => { if (!this.closed) this.retire(member, moves) }, () => {})
  }

  /**
   * The heir of a key of member `id`, out or leaving, by this node's view
   * (the cluster's store records it); undefined when no member can take it.
   */
  heirOf (id: string, key: string): string | undefined {
    const member = this.members.get(id)
    if (member !== undefined) return this.heirFor(member, key)?.id
    const others = [...this.members.values()].filter((m) => !m.left)
    const up = others.filter((m) => m.link.state === 'up')
    const heirs = up.length > 0 ? up : others
    return (pick(key, heirs.filter((m) => !m.draining)) ?? pick(key, heirs))?.id
  }

  /** A member that left: its keys go to `moves` (or, for a node alone, to the best of the others), then its link closes. */
  private retire (member: Member, moves?: Map<string, Member>): void {
    const { id } = member
    // a member of the same id may have joined meanwhile (another process, in a cluster)
    if (this.members.get(id) === member) {
      this.members.delete(id)
      this.directory.forget(id)
    }
    this.failover(member, moves)
    member.link.retire()
    this.options.metrics.poolFailovers.remove({ ...this.labels, member: id })
    for (const state of MEMBER_STATES) this.options.metrics.poolMemberState.remove({ ...this.labels, member: id, state })
    this.updateState()
  }

  /** Each member's load, for the gauges at a scrape. */
  private * loads (): Iterable<MemberLoadSample> {
    for (const id of this.members.keys()) yield { endpoint: this.labels.endpoint, member: id, ...this.assignments.loadOf(id) }
  }

  /** Whether a client can be routed: its key is not missing nor empty. */
  routable (client: SyncUser): boolean {
    return this.routeKey(client) !== undefined
  }

  start (): void {
    this.started = true
    for (const member of this.members.values()) {
      member.link.start()
      // a member that never comes up is out after failoverMs, like one that went down
      this.watchDown(member)
    }
  }

  /** Resolves once every member's link has committed its events, or left `up`, or `timeoutMs` passed; with the count left. */
  async settle (timeoutMs: number): Promise<number> {
    const left = await Promise.all([...this.members.values()].map(async (m) => await m.link.drain(timeoutMs)))
    return left.reduce((sum, n) => sum + n, 0)
  }

  close (): void {
    this.closed = true
    this.unpublishLoads()
    this.directory.close()
    this.assignments.clear()
    for (const member of this.members.values()) {
      clearTimeout(member.failoverTimer)
      member.link.close()
    }
  }

  /**
   * Routes one client event (the relay's EventSink). An `open` assigns the
   * client's key; other events follow the key their client opened with.
   */
  send (event: OutboundEvent): boolean {
    if (!this.backlog.clients.has(clientOf(event))) {
      const routed = this.route(event)
      if (routed !== undefined) return routed
    }
    return this.wait(event)
  }

  /** Routes an event, or returns undefined when it must wait for its key's member from the directory. */
  private route (event: OutboundEvent): boolean | undefined {
    const { user } = event
    // under `allow` each connection is a client of its own, routed by its own key
    const client = clientOf(event)
    let key = this.clients.get(client)
    if (event.kind === 'open' && event.opened) {
      // refused at the handshake when missing; a user id key keeps the event routable whatever comes
      const opened = this.routeKey(event.opened) ?? user
      if (key !== opened) {
        const member = this.memberOfNew(opened)
        if (member === undefined) return undefined
        if (key !== undefined) this.assignments.leave(key)
        key = opened
        this.clients.set(client, key)
        this.assignments.join(key, () => member)
        this.answers.delete(key)
      }
    }
    key ??= user
    if (event.kind === 'close') this.clients.delete(client)
    // stamped in place, not copied: every client event passes here, and the relay hands each one over once
    const keyed = event as Keyed
    keyed.key = key
    return this.deliver(keyed)
  }

  /** The member of a key this node may not hold yet: its assignment here, else the directory's answer, else undefined while it is asked. */
  private memberOfNew (key: string): string | undefined {
    const held = this.assignments.memberOf(key) ?? this.answers.get(key)
    if (held !== undefined) return held
    if (this.holding.has(key)) return undefined
    const answer = this.directory.hold(key, this.choose(key).id)
    if (typeof answer === 'string') return answer
    this.holding.add(key)
    void answer.then((member) => {
      this.holding.delete(key)
      if (this.closed) return
      // a member this node does not know (yet, or at all: the store is not trusted): this node's own choice
      if (!this.members.has(member)) this.options.log.warn({ key, member }, 'the cluster assigned a key to a member this node does not know; routing it by this node\'s choice')
      this.answers.set(key, this.members.has(member) ? member : this.choose(key).id)
      this.flush()
    })
    return undefined
  }

  /** Puts an event behind the backlog; a client's messages there are held to `queue.maxClientBytes`. */
  private wait (event: OutboundEvent): boolean {
    const { clients, events } = this.backlog
    const client = clientOf(event)
    const waiting = clients.get(client) ?? { events: 0, bytes: 0 }
    if (event.kind === 'message') {
      if (waiting.bytes + event.bytes > this.options.maxClientBytes) {
        this.options.metrics.droppedEvents.inc({ ...this.labels, reason: 'client_share' })
        this.emit('overShare', client)
        return false
      }
      waiting.bytes += event.bytes
    }
    waiting.events++
    clients.set(client, waiting)
    events.push(event)
    return true
  }

  /** Routes the backlog in order, up to the first event whose key still waits for the directory. */
  private flush (): void {
    const { clients, events } = this.backlog
    while (events.length > 0) {
      const event = events[0]
      if (this.route(event) === undefined) return
      events.shift()
      const client = clientOf(event)
      const waiting = clients.get(client)
      if (waiting === undefined) continue
      waiting.events--
      if (event.kind === 'message') waiting.bytes -= event.bytes
      if (waiting.events === 0) clients.delete(client)
    }
    this.answers.clear()
  }

  /** Hands the event to its key's member, unless it must wait for the client's previous `close` to be committed on another member. */
  private deliver (event: Keyed): boolean {
    const member = this.memberFor(event.key)
    const client = clientOf(event)
    const gate = this.gates.get(client)
    if (gate !== undefined && (gate.waiting.length > 0 || gate.member !== member)) {
      if (event.kind === 'message' && gate.waitingBytes + event.bytes > this.options.maxClientBytes) {
        this.options.metrics.droppedEvents.inc({ ...this.labels, reason: 'client_share' })
        this.emit('overShare', client)
        return false
      }
      gate.waiting.push(event)
      if (event.kind === 'message') gate.waitingBytes += event.bytes
      return true
    }
    if (event.kind !== 'close') return member.link.send(event)
    const closing: Gate = { member, waiting: [], waitingBytes: 0 }
    this.gates.set(client, closing)
    const settled = event.settled
    const sent = member.link.send({ ...event, settled: () => { settled?.(); this.release(client, closing) } })
    this.assignments.leave(event.key)
    if (!sent) this.release(client, closing)
    return sent
  }

  /** A client's `close` was committed (or dropped): its waiting events go on, in order. */
  private release (client: string, gate: Gate): void {
    if (this.gates.get(client) !== gate) return
    this.gates.delete(client)
    for (const event of gate.waiting) this.deliver(event)
  }

  private memberFor (key: string): Member {
    const id = this.assignments.memberOf(key)
    return (id === undefined ? undefined : this.members.get(id)) ?? this.choose(key)
  }

  /**
   * The member for a new key: the best by HRW among those up and not
   * draining; with none, among those still within `failoverMs` (the events
   * queue there, PROTOCOL.md §5); then any that has not given up; then any.
   */
  private choose (key: string): Member {
    const all = [...this.members.values()].filter((m) => !m.left)
    const tiers: Array<(m: Member) => boolean> = [
      (m) => m.link.state === 'up' && !m.draining,
      (m) => m.link.state === 'connecting' && !m.out && !m.draining,
      (m) => m.link.state !== 'unavailable' && !m.draining
    ]
    for (const fits of tiers) {
      const best = pick(key, all.filter(fits))
      if (best) return best
    }
    return pick(key, all) as Member
  }

  private add (config: PoolMemberConfig): Member {
    const link = this.options.dial(config)
    const member: Member = { id: config.id, weight: config.weight, link, draining: false, out: false, drainedSent: false, awaitingIdle: false, left: false }
    this.members.set(config.id, member)
    link.on('actions', (actions) => this.emit('actions', actions))
    link.on('overShare', (user) => this.emit('overShare', user))
    link.on('pool', (action) => { if (!member.left) this.onPoolAction(member, action) })
    link.on('state', (state) => { if (!member.left) this.onMemberState(member, state) })
    this.publish(member)
    return member
  }

  private onMemberState (member: Member, state: LinkState): void {
    if (state === 'up') {
      clearTimeout(member.failoverTimer)
      member.failoverTimer = undefined
      member.out = false
      this.directory.seen(member.id, true)
      // keys left on members that went out while nobody could take them move now
      for (const other of this.members.values()) {
        if (other.out && this.assignments.loadOf(other.id).keys > 0) this.goOut(other)
      }
      this.checkDrained(member)
    } else if (state !== 'closed') {
      this.watchDown(member)
    }
    this.publish(member)
    if (state === 'unavailable' && this.aggregate() !== 'unavailable') this.emit('unavailable', this.clientsOf(member))
    this.updateState()
  }

  private updateState (): void {
    const next = this.aggregate()
    if (next !== this.current) {
      this.current = next
      this.emit('state', next)
    }
  }

  private watchDown (member: Member): void {
    if (member.out || member.failoverTimer !== undefined) return
    this.directory.seen(member.id, false)
    member.failoverTimer = setTimeout(() => {
      member.failoverTimer = undefined
      member.out = true
      this.publish(member)
      this.goOut(member)
    }, this.options.backend.failoverMs)
    member.failoverTimer.unref()
  }

  /** A member is out by this node's view: its keys move now (a node alone), or once the cluster decides (`rehome`). */
  private goOut (member: Member): void {
    if (this.directory.down(member.id, (key) => this.heirFor(member, key)?.id)) this.failover(member)
  }

  /**
   * The cluster decided that `id` is out: this node's clients of its keys
   * go to the members the store now names, as in a failover. Idempotent:
   * keys already moved here, or still on `id` in the store, stay.
   */
  private async rehome (id: string): Promise<void> {
    const dead = this.members.get(id)
    if (dead === undefined) return
    const keys = this.assignments.keysOf(id)
    if (keys.length === 0) return
    let shared: Array<string | undefined>
    try {
      shared = await this.directory.assigned(keys)
    } catch {
      return // the store is away; the next periodic look tries again
    }
    if (this.closed || this.members.get(id) !== dead) return
    const moves = new Map<string, Member>()
    keys.forEach((key, i) => {
      const heir = shared[i] === undefined ? undefined : this.members.get(shared[i] as string)
      if (heir !== undefined && heir !== dead && this.assignments.memberOf(key) === id) moves.set(key, heir)
    })
    if (moves.size > 0) this.failover(dead, moves)
  }

  /** Who may take a dead member's keys: the members up; with none, for a member that left, any other. */
  private heirsOf (dead: Member): Member[] {
    const others = [...this.members.values()].filter((m) => m !== dead && !m.left)
    const up = others.filter((m) => m.link.state === 'up')
    // a member that left hands its keys over even with nobody up: they wait on the others' links, as for a backend away
    return up.length > 0 || !dead.left ? up : others
  }

  /** The heir of one of `dead`'s keys by HRW, not draining unless all are; undefined when nobody can take it. */
  private heirFor (dead: Member, key: string): Member | undefined {
    const heirs = this.heirsOf(dead)
    return pick(key, heirs.filter((m) => !m.draining)) ?? pick(key, heirs)
  }

  /**
   * Moves every key of `dead` to the members that are up: each key's new
   * member gets `open` for its clients `dead` had committed, in their order,
   * then every event `dead` never committed (with acks: never acknowledged),
   * in order; live traffic follows. Players stay connected.
   */
  private failover (dead: Member, decided?: Map<string, Member>): void {
    let moves = decided
    if (moves === undefined) {
      if (this.heirsOf(dead).length === 0) return
      const keys = this.assignments.keysOf(dead.id)
      if (keys.length === 0 && dead.link.idle) return
      moves = new Map(keys.map((key) => [key, this.heirFor(dead, key) as Member]))
    }
    const { metrics, log } = this.options
    const { roster, events } = dead.link.surrender()
    for (const [key, heir] of moves) this.assignments.move(key, heir.id)
    const keys = [...moves.keys()]
    let rehomed = 0
    for (const client of roster) {
      // the key the client opened with: a refresh may have changed the claim `route` names, not the client's key
      const key = this.clients.get(clientOf(client)) ?? this.routeKey(client) ?? client.user
      const text = encodeOpen(client.user, client.claims, client.params, client.conn)
      const heir = this.memberFor(key)
      heir.link.send({ kind: 'open', user: client.user, conn: client.conn, text, bytes: Buffer.byteLength(text), opened: client, key })
      // a client of a key the cluster has not moved (yet) is opened again on the dead member's own link
      if (heir !== dead) rehomed++
    }
    for (const event of events as Keyed[]) {
      const heir = this.memberFor(event.key)
      const gate = this.gates.get(clientOf(event))
      // the close a gate waits on is committed by its new member now
      if (event.kind === 'close' && gate?.member === dead) gate.member = heir
      // a heir that has given up refuses it: its close is settled all the same, so the gate waiting on it opens
      if (!heir.link.send(event)) event.settled?.()
      if (event.kind === 'open') rehomed++
    }
    // in a cluster the one node that decided counts the failover (cluster-directory.ts)
    if (decided === undefined) metrics.poolFailovers.inc({ ...this.labels, member: dead.id })
    metrics.poolRehomedClients.inc(this.labels, rehomed)
    const why = dead.left ? 'pool member left; its keys moved to the other members' : 'pool member down past failoverMs; its keys moved to the other members'
    log.warn({ member: dead.id, keys: keys.length, clients: rehomed, replayed: events.length, failoverMs: this.options.backend.failoverMs }, why)
    this.checkDrained(dead)
  }

  private onPoolAction (member: Member, action: PoolAction): void {
    const { log } = this.options
    if (action.action === 'undrain') {
      member.draining = false
      member.drainedSent = false
      log.info({ member: member.id }, 'pool member undrained: it takes new keys again')
    } else {
      // a repeated drain is answered again once the member holds nothing
      log.info({ member: member.id, repeated: member.draining, keys: this.assignments.loadOf(member.id).keys }, 'pool member draining: no new keys for it')
      member.draining = true
      member.drainedSent = false
      this.checkDrained(member)
    }
    this.publish(member)
  }

  /** Writes `drained` to a draining member that holds no key, once its link has committed everything. */
  private checkDrained (member: Member): void {
    if (member.left || !member.draining || member.drainedSent || member.awaitingIdle || this.assignments.loadOf(member.id).keys > 0) return
    if (member.link.notify(DRAINED_EVENT)) {
      member.drainedSent = true
      this.options.log.info({ member: member.id }, 'pool member drained: it holds no key')
      return
    }
    member.awaitingIdle = true
    const retry = (): void => {
      member.link.off('drained', retry)
      member.link.off('state', retry)
      member.awaitingIdle = false
      this.checkDrained(member)
    }
    member.link.once('drained', retry)
    member.link.once('state', retry)
  }

  private clientsOf (member: Member): string[] {
    return [...this.clients].filter(([, key]) => this.assignments.memberOf(key) === member.id).map(([user]) => user)
  }

  private aggregate (): LinkState {
    const states = [...this.members.values()].map((m) => m.link.state)
    if (states.includes('up')) return 'up'
    if (states.every((s) => s === 'closed')) return 'closed'
    if (states.every((s) => s === 'unavailable' || s === 'closed')) return 'unavailable'
    return 'connecting'
  }

  private stateOf (member: Member): MemberState {
    if (member.out) return 'out'
    if (member.link.state !== 'up') return 'down'
    return member.draining ? 'draining' : 'up'
  }

  private publish (member: Member): void {
    const state = this.stateOf(member)
    for (const s of MEMBER_STATES) this.options.metrics.poolMemberState.set({ ...this.labels, member: member.id, state: s }, s === state ? 1 : 0)
  }
}
