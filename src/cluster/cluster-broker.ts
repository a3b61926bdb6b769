/**
 * Several nodes as one gateway (docs/scaling.md), over any transport
 * (transport.ts). Each node holds a lease it refreshes every third of
 * `presenceTtlMs`; presence entries name their node, so they die with its
 * lease, and a survivor reaps a dead node's users (reaper.ts). A replace
 * across nodes is a hand-off (handoff.ts); actions for users connected elsewhere
 * are forwarded (forwarder.ts). This module claims, releases, and joins.
 *
 * While the transport is away every node keeps its clients and links;
 * claims come back `unchecked`, forwards are dropped and counted; when it
 * returns, each node registers its connections again and conflicts are
 * settled by policy.
 */
import { EventEmitter } from 'node:events'
import type { FastifyBaseLogger } from 'fastify'
import { isParams, type ClientAction } from '../../protocol/index.js'
import type { Connection, Eviction } from '../domain.js'
import type { GatewayMetrics } from '../metrics.js'
import type { Broker, BrokerEvents, BrokerState, Claim, LocalNode } from './broker.js'
import { presenceField } from './connection-id.js'
import { Forwarder } from './forwarder.js'
import { Handoffs } from './handoff.js'
import { ALL, nodeChannel, type ClusterMessage, type PoolChange, type Post } from './messages.js'
import { Reaper } from './reaper.js'
import type { ClusterTransport, PoolStore, Registration } from './transport.js'
import { brokerFailure, type BrokerFailure } from './broker-failure.js'

/** A backend pool changed for every node (PoolStore has what changed). */
export type PoolNotice = (endpoint: string, member: string, what: PoolChange) => void

export interface ClusterBrokerOptions {
  /** `cluster.name`. */
  name: string
  nodeId: string
  presenceTtlMs: number
  handoffTimeoutMs: number
  metrics: GatewayMetrics
  log: FastifyBaseLogger
}

export class ClusterBroker extends EventEmitter<BrokerEvents> implements Broker {
  private readonly failed: BrokerFailure
  readonly cluster: string
  private node?: LocalNode
  private current: BrokerState = 'down'
  /** When the broker last came up, and last went down (ms). */
  private upSince = 0
  private downSince = 0
  private joining = false
  /** Another `up` arrived while a join ran: join again once it ends. */
  private rejoin = false
  private closed = false
  private timer?: NodeJS.Timeout
  private reaper?: Reaper
  private readonly handoffs: Handoffs
  /** The last claim of each field running or queued, so the next waits for it. */
  private readonly claiming = new Map<string, Promise<void>>()
  private readonly forwarder: Forwarder
  private readonly poolListeners: PoolNotice[] = []

  constructor (private readonly transport: ClusterTransport, private readonly options: ClusterBrokerOptions) {
    super()
    this.failed = brokerFailure(options)
    this.cluster = options.name
    const post: Post = (channel, message, op, done) => this.post(channel, message, op, done)
    this.handoffs = new Handoffs(options.nodeId, options.handoffTimeoutMs, post)
    this.forwarder = new Forwarder({
      nodeId: options.nodeId,
      presenceTtlMs: options.presenceTtlMs,
      presence: transport.presence,
      post,
      isUp: () => this.current === 'up',
      upSince: () => this.upSince,
      metrics: options.metrics,
      log: options.log
    })
  }

  get state (): BrokerState {
    return this.current
  }

  async start (node: LocalNode, waitMs: number): Promise<void> {
    this.node = node
    const { metrics, log } = this.options
    this.reaper = new Reaper({ presence: this.transport.presence, node, release: (field, id) => this.releaseField(field, id), metrics, log })
    this.transport.on('up', () => { void this.join() })
    this.transport.on('down', () => this.setState('down'))
    this.transport.bus.onMessage((channel, text) => {
      // a message of another form (another version or app on the same Redis) must not throw out of the transport's handler
      try {
        this.onMessage(channel, text)
      } catch (err) {
        this.failed('message', err as Error)
      }
    })
    this.transport.connect()
    const period = Math.floor(this.options.presenceTtlMs / 3)
    this.timer = setInterval(() => { void this.tick() }, period)
    this.timer.unref()
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.off('state', joined)
        this.options.log.warn({ redis: this.transport.target, waitedMs: waitMs }, 'not joined the cluster yet; serving meanwhile (degraded)')
        resolve()
      }, waitMs)
      const joined = (): void => {
        clearTimeout(timer)
        resolve()
      }
      this.once('state', joined)
    })
  }

  /** Backend pools' shared state (docs/pools.md, "Clusters"). */
  get pools (): PoolStore {
    return this.transport.pools
  }

  /** Tells every node, this one included, that a pool changed; at most once, so nodes also look again periodically. */
  notifyPools (endpoint: string, member: string, what: PoolChange): void {
    this.post(ALL, { t: 'pool', e: endpoint, m: member, what }, 'pool')
  }

  onPoolNotice (listener: PoolNotice): void {
    this.poolListeners.push(listener)
  }

  register (connection: Connection): void {
    if (this.current === 'up') this.reassert(connection, false).catch((err: Error) => this.failed('register', err))
  }

  async claim (connection: Connection): Promise<Claim> {
    const claim = await this.inOrder(fieldOf(connection), async () => await this.tryClaim(connection))
    const outcome = claim.outcome === 'handedOff' && claim.lost ? 'handoff_timeout' : claim.outcome
    this.options.metrics.clusterClaims.inc({ endpoint: connection.endpoint, outcome })
    return claim
  }

  release (connection: Connection, holder?: Connection): void {
    this.releaseField(fieldOf(connection), connection.id, holder)
  }

  forward (endpoint: string, actions: ClientAction[], everywhere = false): void {
    this.forwarder.forward(endpoint, actions, everywhere)
  }

  private releaseField (field: string, id: string, holder?: Connection): void {
    if (this.current === 'down') return // registered again, or not, when the transport returns
    this.transport.presence.release(field, id, holder && this.registration(holder))
      .catch((err: Error) => this.failed('release', err))
  }

  async close (): Promise<void> {
    this.closed = true
    clearInterval(this.timer)
    // a clean goodbye: nothing left to reap
    if (this.current === 'up') await this.transport.presence.leave().catch((err: Error) => this.failed('leave', err))
    this.setState('down')
    await this.transport.close()
  }

  private async tryClaim (connection: Connection): Promise<Claim> {
    if (this.current === 'down') return { outcome: 'unchecked' }
    const { nodeId } = this.options
    let found
    try {
      found = await this.transport.presence.claim(this.registration(connection), connection.policy)
    } catch (err) {
      this.failed('claim', err as Error)
      return { outcome: 'unchecked' }
    }
    const { claimed, old, alive, entry } = found
    if (!claimed) return { outcome: 'refused' }
    if (old === undefined || old.n === nodeId) return { outcome: 'free' }
    if (!alive) return entry ? { outcome: 'lost', lost: { params: entry.p } } : { outcome: 'free' }
    const answer = await this.handoffs.request(old, connection.endpoint, connection.user, 'replaced', connection.refresh ? connection.params : undefined)
    if (answer === 'refreshed') return { outcome: 'handedOff', refreshed: true }
    if (answer === 'closed' || !entry) return { outcome: 'handedOff' }
    this.options.log.warn({ user: connection.user, node: old.n, timeoutMs: this.options.handoffTimeoutMs }, 'replace: the node holding the old connection did not answer; reporting its close here')
    return { outcome: 'handedOff', lost: { params: entry.p } }
  }

  /**
   * Runs one field's claims one after another, in the order they were asked
   * for, each to its end (hand-off included). So a later connection id of
   * this node is always the later claim in the store (see connection-id.ts),
   * and a claim that finds this node's own earlier connection in presence
   * never goes ahead of the hand-off that connection's claim was still
   * waiting for.
   */
  private async inOrder<T> (field: string, run: () => Promise<T>): Promise<T> {
    const result = (this.claiming.get(field) ?? Promise.resolve()).then(run)
    const done = result.then(() => {}, () => {})
    this.claiming.set(field, done)
    void done.then(() => { if (this.claiming.get(field) === done) this.claiming.delete(field) })
    return await result
  }

  private onMessage (channel: string, text: string): void {
    let message: ClusterMessage
    try {
      message = JSON.parse(text) as ClusterMessage
    } catch {
      this.failed('message', new Error('a cluster message that is not JSON'))
      return
    }
    const node = this.node as LocalNode
    switch (message.t) {
      case 'actions':
        if (message.from === this.options.nodeId) return // our own `all`, already delivered here
        this.forwarder.received(channel, message)
        node.deliver(message.e, message.a)
        return
      case 'evict':
        // a user this node is reporting for a reaped node: its report is the close asked for
        // `p` is another node's word, from Redis: a params object, or nothing (a plain replace)
        this.handoffs.asked(message, this.reaper?.report(`${message.e}:${message.u}`) ??
          node.evict(message.e, message.u, message.c, message.why, isParams(message.p) ? message.p : undefined).catch((err: Error) => this.failed('evict', err)))
        return
      case 'evicted':
        this.handoffs.answered(message.id, message.r === true)
        return
      case 'pool': {
        const { e, m, what } = message
        if (typeof e !== 'string' || typeof m !== 'string' || (what !== 'out' && what !== 'members')) throw new Error('a pool notice of another form')
        for (const listener of this.poolListeners) listener(e, m, what)
      }
    }
  }

  private post (channel: string, message: ClusterMessage, op: string, done?: (receivers?: number) => void): void {
    this.transport.bus.publish(channel, JSON.stringify(message)).then((receivers) => done?.(receivers), (err: Error) => {
      this.failed(op, err)
      done?.()
    })
  }

  /** The transport is back: take the lease, register every connection connected here, then serve. */
  private async join (): Promise<void> {
    if (this.closed || !this.transport.isUp) return
    // the transport came back while a join ran: what that join set up (its subscription) may have died with the old connection
    if (this.joining) {
      this.rejoin = true
      return
    }
    this.joining = true
    this.rejoin = false
    try {
      await this.transport.bus.subscribe([nodeChannel(this.options.nodeId), ALL])
      await this.transport.presence.renewLease()
      await this.reconcile()
      this.upSince = Date.now()
      this.setState('up')
    } catch (err) {
      this.failed('join', err as Error)
    } finally {
      this.joining = false
      if (this.rejoin) void this.join()
    }
  }

  /**
   * After the transport was away (or Redis restarted empty): registers every
   * connection connected here again. A user registered meanwhile on another live
   * node is settled by the policy; one left by a dead node is reported
   * closed; if this node was reaped while cut off, its users are announced
   * again.
   */
  private async reconcile (): Promise<void> {
    const node = this.node as LocalNode
    const { presence } = this.transport
    const reaped = await presence.takeReapedMark()
    const here = new Set<string>()
    const work: Array<Promise<void>> = []
    for (const connection of node.connections()) {
      here.add(fieldOf(connection))
      work.push(this.reassert(connection, reaped && connection.since < this.downSince))
    }
    // entries of connections that ended while the transport was away
    for (const [field, stale] of await presence.recordsHere()) {
      if (!here.has(field)) work.push(presence.release(field, stale.c))
    }
    await Promise.all(work)
    if (reaped) this.options.log.warn('this node was reaped while cut off from redis; its users were announced again')
  }

  /**
   * Registers a connection this node holds, settling a conflict with
   * another live node by policy; `reopen`: the cluster reported it closed
   * while this node was cut off, so it is announced again.
   */
  private async reassert (connection: Connection, reopen: boolean): Promise<void> {
    const node = this.node as LocalNode
    const { result, other, entry } = await this.transport.presence.reassert(this.registration(connection), connection.policy)
    const why: Eviction = connection.policy === 'replace' ? 'replaced' : 'rejected'
    if (result === 'lost') {
      await node.evict(connection.endpoint, connection.user, connection.id, why)
      return
    }
    if (result === 'won' && other) void this.handoffs.request(other, connection.endpoint, connection.user, why)
    if (entry) void node.reportLost(connection.endpoint, connection.user, entry.p)
    if (reopen) node.reopen(connection.endpoint, connection.user, connection.id)
  }

  private async tick (): Promise<void> {
    if (this.current === 'down') return
    try {
      await this.transport.presence.renewLease()
    } catch (err) {
      this.failed('lease', err as Error)
      return
    }
    // a node that just (re)joined gives the others one lease to register again before it reaps anyone
    if (Date.now() - this.upSince < this.options.presenceTtlMs) return
    await this.reaper?.sweep().then((alive) => this.forwarder.keepOnly(alive), (err: Error) => this.failed('sweep', err))
  }

  private setState (state: BrokerState): void {
    if (state === this.current) return
    this.current = state
    this.options.metrics.brokerUp.set(state === 'up' ? 1 : 0)
    if (state === 'down') {
      this.downSince = Date.now()
      // a hand-off in flight will not be answered; its claim proceeds at its timeout
      if (!this.closed) this.options.log.warn({ redis: this.transport.target }, 'redis unreachable: serving the clients connected here; cross-node duplicates and forwards are paused')
    } else {
      this.forwarder.joined()
      this.options.log.info({ redis: this.transport.target, node: this.options.nodeId }, 'joined the cluster')
    }
    this.emit('state', state)
  }

  /** What the store records of one of this node's connections. */
  private registration (connection: Connection): Registration {
    return {
      field: fieldOf(connection),
      presence: { n: this.options.nodeId, c: connection.id, s: connection.since },
      record: { c: connection.id, s: connection.since, p: connection.params }
    }
  }
}

function fieldOf (connection: Connection): string {
  return presenceField(connection)
}
