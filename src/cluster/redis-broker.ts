/**
 * The cluster over Redis (docs/scaling.md). Each node holds a lease it
 * refreshes every third of `presenceTtlMs`; presence entries name their
 * node, so they die with its lease, and a survivor reaps a dead node's
 * users by reporting their `close` (1006) on its own backend link. A replace
 * across nodes is a hand-off: the node holding the old connection closes it
 * and answers once that `close` is committed to its backend link, so the
 * backend sees close(old) before open(new). Actions for users held elsewhere
 * travel over pub/sub, one channel per node (and one for `all`), published
 * in order from one connection, so per-user order holds.
 *
 * While Redis is away every node keeps its clients and links; claims come
 * back `unchecked`, forwards are dropped and counted; when it returns, each
 * node registers its connections again and conflicts are settled by policy.
 *
 * Pub/sub is at most once: a message Redis took but never passed on (it
 * died, or the receiver was not subscribed) is gone. So each sender stamps
 * its messages with the running count of deliveries it has published on that
 * channel, and a receiver that sees the count jump counts the gap as dropped.
 */
import { EventEmitter } from 'node:events'
import { createHash, randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import type { ClientAction, Params } from '../../protocol/index.js'
import type { GatewayMetrics } from '../metrics.js'
import type { Connection, Eviction } from '../domain.js'
import type { Broker, BrokerEvents, BrokerState, Claim, LocalNode } from './broker.js'
import { CLAIM, REASSERT, REAP, RELEASE } from './redis-scripts.js'
import { forUsers, targetCount, targetsOf } from './targets.js'

export interface RedisBrokerOptions {
  url: string
  /** `cluster.name`: the key prefix. */
  name: string
  nodeId: string
  presenceTtlMs: number
  handoffTimeoutMs: number
  metrics: GatewayMetrics
  log: FastifyBaseLogger
}

/** A message on a node's channel, or on the `all` channel. */
type ClusterMessage =
  /** `n`: deliveries published by `from` on this channel so far, this one included; `ep`: the sender process. */
  | { t: 'actions', e: string, a: ClientAction[], from: string, n: number, ep: string }
  | { t: 'evict', e: string, u: string, c: string, why: Eviction, from: string, id: string }
  | { t: 'evicted', id: string }

interface Presence { n: string, c: string, s: number }
interface Held { c: string, s: number, p: Params }

interface Forward { endpoint: string, actions: ClientAction[] }

export class RedisBroker extends EventEmitter<BrokerEvents> implements Broker {
  readonly cluster: string
  private readonly cmd: Redis
  private readonly sub: Redis
  private readonly prefix: string
  private node?: LocalNode
  private current: BrokerState = 'down'
  /** When the broker last came up, and last went down (ms). */
  private upSince = 0
  private downSince = 0
  private joining = false
  private closed = false
  private timer?: NodeJS.Timeout
  private nextId = 0
  private readonly handoffs = new Map<string, () => void>()
  /** Closes this node is reporting for reaped users, by field: a claim on them waits for the report. */
  private readonly reaping = new Map<string, Promise<void>>()
  /** The last claim of each field running or queued, so the next waits for it. */
  private readonly claiming = new Map<string, Promise<void>>()
  private pending: Forward[] = []
  private pumping = false
  /** Forwards dropped during this outage were logged once; the metric counts each. */
  private lossLogged = false
  /** Deliveries published per channel, and the last count seen per sender and channel (gap detection). */
  private readonly published = new Map<string, number>()
  private readonly heard = new Map<string, { ep: string, n: number }>()
  private readonly epoch = randomBytes(6).toString('hex')

  constructor (private readonly options: RedisBrokerOptions) {
    super()
    this.cluster = options.name
    this.prefix = `${options.name}:`
    const redisOptions = {
      lazyConnect: true,
      // fail fast while Redis is away: the node carries on without it, and says so
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: Math.max(500, Math.floor(options.presenceTtlMs / 3)),
      retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, 1000),
      connectionName: `gatehouse:${options.nodeId}`
    }
    this.cmd = new Redis(options.url, redisOptions)
    this.sub = new Redis(options.url, { ...redisOptions, autoResubscribe: false })
  }

  get state (): BrokerState {
    return this.current
  }

  /** Where Redis is, without credentials, for logs. */
  get target (): string {
    const url = new URL(this.options.url)
    return `${url.protocol}//${url.host}${url.pathname}`
  }

  async start (node: LocalNode, waitMs: number): Promise<void> {
    this.node = node
    for (const redis of [this.cmd, this.sub]) {
      redis.on('ready', () => { void this.join() })
      redis.on('close', () => this.setState('down'))
      redis.on('error', (err: Error) => this.options.log.debug({ err: err.message, redis: this.target }, 'redis connection error'))
      redis.connect().catch(() => { /* retried by ioredis; 'error' has logged it */ })
    }
    this.sub.on('message', (channel: string, text: string) => this.onMessage(channel, text))
    const period = Math.floor(this.options.presenceTtlMs / 3)
    this.timer = setInterval(() => { void this.tick() }, period)
    this.timer.unref()
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.off('state', joined)
        this.options.log.warn({ redis: this.target, waitedMs: waitMs }, 'not joined the cluster yet; serving meanwhile (degraded)')
        resolve()
      }, waitMs)
      const joined = (): void => {
        clearTimeout(timer)
        resolve()
      }
      this.once('state', joined)
    })
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
    if (this.current === 'down') return // registered again, or not, when Redis returns
    const { nodeId } = this.options
    const field = fieldOf(connection)
    const instead = holder ? [presenceOf(holder, nodeId), heldOf(holder)] : []
    this.script(RELEASE, [this.presenceKey(field), this.heldKey(nodeId)], [field, connection.id, ...instead])
      .catch((err: Error) => this.failed('release', err))
  }

  forward (endpoint: string, actions: ClientAction[]): void {
    this.pending.push({ endpoint, actions })
    if (!this.pumping) void this.pump()
  }

  async close (): Promise<void> {
    this.closed = true
    clearInterval(this.timer)
    const { nodeId } = this.options
    if (this.current === 'up') {
      // a clean goodbye: nothing left to reap
      await Promise.all([
        this.cmd.del(this.leaseKey(nodeId), this.heldKey(nodeId)),
        this.cmd.srem(this.key('nodes'), nodeId)
      ]).catch((err: Error) => this.failed('leave', err))
    }
    this.setState('down')
    this.sub.disconnect()
    await this.cmd.quit().catch(() => this.cmd.disconnect())
  }

  private async tryClaim (connection: Connection): Promise<Claim> {
    if (this.current === 'down') return { outcome: 'unchecked' }
    const { nodeId } = this.options
    const field = fieldOf(connection)
    let reply: [string, number, string, number]
    try {
      reply = await this.script(CLAIM, [this.presenceKey(field), this.heldKey(nodeId)], [
        field, presenceOf(connection, nodeId), heldOf(connection), connection.policy, this.prefix, nodeId
      ]) as typeof reply
    } catch (err) {
      this.failed('claim', err as Error)
      return { outcome: 'unchecked' }
    }
    const [oldText, alive, entryText, claimed] = reply
    if (claimed === 0) return { outcome: 'refused' }
    if (oldText === '') return { outcome: 'free' }
    const old = JSON.parse(oldText) as Presence
    if (old.n === nodeId) return { outcome: 'free' }
    const entry = entryText === '' ? undefined : JSON.parse(entryText) as Held
    if (alive === 0) return entry ? { outcome: 'lost', lost: { params: entry.p } } : { outcome: 'free' }
    const answered = await this.handoff(old, connection.endpoint, connection.user, 'replaced')
    if (answered || !entry) return { outcome: 'handedOff' }
    this.options.log.warn({ user: connection.user, node: old.n, timeoutMs: this.options.handoffTimeoutMs }, 'replace: the node holding the old connection did not answer; reporting its close here')
    return { outcome: 'handedOff', lost: { params: entry.p } }
  }

  /**
   * Runs one field's claims one after another, in the order they were asked
   * for, each to its end (hand-off included). So a later connection id of
   * this node is always the later claim in Redis (see connection-id.ts), and
   * a claim that finds this node's own earlier connection in presence never
   * goes ahead of the hand-off that connection's claim was still waiting for.
   */
  private async inOrder<T> (field: string, run: () => Promise<T>): Promise<T> {
    const result = (this.claiming.get(field) ?? Promise.resolve()).then(run)
    const done = result.then(() => {}, () => {})
    this.claiming.set(field, done)
    void done.then(() => { if (this.claiming.get(field) === done) this.claiming.delete(field) })
    return await result
  }

  /** Asks `old`'s node to close it; true once it answered, false on timeout. */
  private async handoff (old: Presence, endpoint: string, user: string, why: Eviction): Promise<boolean> {
    const id = `${this.options.nodeId}#h${++this.nextId}`
    const answered = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.handoffs.delete(id)
        resolve(false)
      }, this.options.handoffTimeoutMs)
      this.handoffs.set(id, () => {
        clearTimeout(timer)
        this.handoffs.delete(id)
        resolve(true)
      })
    })
    this.publish(this.nodeChannel(old.n), { t: 'evict', e: endpoint, u: user, c: old.c, why, from: this.options.nodeId, id }, 'handoff')
    return await answered
  }

  /** Counts deliveries the sender published on `channel` that never arrived here. */
  private checkGap (channel: string, message: Extract<ClusterMessage, { t: 'actions' }>): void {
    const key = `${message.from}\n${channel}`
    const last = this.heard.get(key)
    this.heard.set(key, { ep: message.ep, n: message.n })
    if (last?.ep !== message.ep) return // a sender we had not heard from, or restarted
    const missed = message.n - weight(message.a) - last.n
    if (missed <= 0) return
    this.options.metrics.droppedActions.inc({ endpoint: message.e, reason: 'broker_unavailable' }, missed)
    this.options.log.warn({ from: message.from, missed }, 'forwarded actions lost in redis (pub/sub is at most once)')
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
        this.checkGap(channel, message)
        this.options.metrics.clusterForwards.inc({ endpoint: message.e, direction: 'in' }, message.a.length)
        node.deliver(message.e, message.a)
        return
      case 'evict': {
        const field = `${message.e}:${message.u}`
        const done = this.reaping.get(field) ?? node.evict(message.e, message.u, message.c, message.why)
        void done.then(() => this.publish(this.nodeChannel(message.from), { t: 'evicted', id: message.id }, 'handoff'))
        return
      }
      case 'evicted':
        this.handoffs.get(message.id)?.()
    }
  }

  /** Takes every queued forward at once: one lookup for all their users, then the publishes, in order. */
  private async pump (): Promise<void> {
    this.pumping = true
    while (this.pending.length > 0) {
      const batch = this.pending
      this.pending = []
      await this.forwardBatch(batch)
    }
    this.pumping = false
  }

  private async forwardBatch (batch: Forward[]): Promise<void> {
    const { metrics, log, nodeId } = this.options
    const dropped = (endpoint: string, reason: string, count: number): void => {
      if (count > 0) metrics.droppedActions.inc({ endpoint, reason }, count)
    }
    const fields = [...new Set(batch.flatMap(({ endpoint, actions }) => actions.flatMap((a) => targetsOf(a).map((u) => `${endpoint}:${u}`))))]
    let owners = new Map<string, string>()
    try {
      if (this.current === 'down') throw new Error('redis is unreachable')
      const found = fields.length > 0 ? await this.cmd.mget(fields.map((f) => this.presenceKey(f))) : []
      owners = new Map(fields.flatMap((f, i) => {
        const presence = found[i] === null ? undefined : JSON.parse(found[i] as string) as Presence
        return presence && presence.n !== nodeId && !presence.c.startsWith('reap:') ? [[f, presence.n]] : []
      }))
    } catch (err) {
      for (const { endpoint, actions } of batch) dropped(endpoint, 'broker_unavailable', weight(actions))
      if (!this.lossLogged) log.warn({ err: (err as Error).message }, 'actions for users on other nodes are dropped while redis is unreachable (counted in gatehouse_dropped_actions_total)')
      this.lossLogged = true
      return
    }
    // per (node, endpoint): the actions to publish, flushed before every `all` so order holds
    let outbox = new Map<string, Forward & { node: string }>()
    const flush = (): void => {
      for (const { node, endpoint, actions } of outbox.values()) this.sendActions(this.nodeChannel(node), endpoint, actions, true)
      outbox = new Map()
    }
    for (const { endpoint, actions } of batch) {
      for (const action of actions) {
        if ('all' in action) {
          flush()
          this.sendActions(this.key('all'), endpoint, [action], false)
          continue
        }
        const byNode = new Map<string, string[]>()
        let nowhere = 0
        for (const user of targetsOf(action)) {
          const node = owners.get(`${endpoint}:${user}`)
          if (node === undefined) nowhere++
          else byNode.set(node, [...byNode.get(node) ?? [], user])
        }
        // just after a (re)join the others may not have registered their users again yet: a miss is the outage's
        dropped(endpoint, Date.now() - this.upSince < this.options.presenceTtlMs ? 'broker_unavailable' : 'not_connected', nowhere)
        for (const [node, users] of byNode) {
          const key = `${node}\n${endpoint}`
          const entry = outbox.get(key) ?? { node, endpoint, actions: [] }
          entry.actions.push(forUsers(action, users))
          outbox.set(key, entry)
        }
      }
    }
    flush()
  }

  /**
   * Publishes actions. A loss past this point is counted by the receiver,
   * from the gap in `n` it sees next; here it is only logged.
   */
  private sendActions (channel: string, endpoint: string, actions: ClientAction[], toNode: boolean): void {
    const { metrics, log, nodeId } = this.options
    metrics.clusterForwards.inc({ endpoint, direction: 'out' }, actions.length)
    const n = (this.published.get(channel) ?? 0) + weight(actions)
    this.published.set(channel, n)
    this.publish(channel, { t: 'actions', e: endpoint, a: actions, from: nodeId, n, ep: this.epoch }, 'forward', (receivers) => {
      if (receivers === undefined || (toNode && receivers === 0)) {
        log.warn({ endpoint, actions: actions.length, channel, why: receivers === undefined ? 'publish failed' : 'no node is subscribed' }, 'forwarded actions may be lost; their receiver counts them when it next hears from this node')
      }
    })
  }

  /** `done` gets the number of subscribers reached, or undefined when the publish failed. */
  private publish (channel: string, message: ClusterMessage, op: string, done?: (receivers?: number) => void): void {
    this.cmd.publish(channel, JSON.stringify(message)).then((receivers) => done?.(receivers), (err: Error) => {
      this.failed(op, err)
      done?.()
    })
  }

  /** Both connections are ready: take the lease, register every connection held here, then serve. */
  private async join (): Promise<void> {
    if (this.joining || this.closed || this.cmd.status !== 'ready' || this.sub.status !== 'ready') return
    this.joining = true
    try {
      await this.sub.subscribe(this.nodeChannel(this.options.nodeId), this.key('all'))
      await this.renewLease()
      await this.reconcile()
      this.upSince = Date.now()
      this.setState('up')
    } catch (err) {
      this.failed('join', err as Error)
    } finally {
      this.joining = false
    }
  }

  private async renewLease (): Promise<void> {
    const { nodeId, presenceTtlMs } = this.options
    await Promise.all([
      this.cmd.set(this.leaseKey(nodeId), '1', 'PX', presenceTtlMs),
      this.cmd.sadd(this.key('nodes'), nodeId)
    ])
  }

  /**
   * After Redis was away (or restarted empty): registers every connection
   * held here again. A user registered meanwhile on another live node is
   * settled by the policy; one left by a dead node is reported closed; if
   * this node was reaped while cut off, its users are announced again.
   */
  private async reconcile (): Promise<void> {
    const node = this.node as LocalNode
    const { nodeId } = this.options
    const reaped = await this.cmd.del(this.key(`reaped:${nodeId}`)) === 1
    const held = new Set<string>()
    const work: Array<Promise<void>> = []
    for (const connection of node.connections()) {
      held.add(fieldOf(connection))
      work.push(this.reassert(connection, reaped && connection.since < this.downSince))
    }
    // entries of connections that ended while Redis was away
    const recorded = await this.cmd.hgetall(this.heldKey(nodeId))
    for (const [field, text] of Object.entries(recorded)) {
      if (held.has(field)) continue
      const stale = JSON.parse(text) as Held
      work.push(this.script(RELEASE, [this.presenceKey(field), this.heldKey(nodeId)], [field, stale.c]).then(() => {}))
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
    const { nodeId } = this.options
    const field = fieldOf(connection)
    const [result, otherText, entryText] = await this.script(REASSERT, [this.presenceKey(field), this.heldKey(nodeId)], [
      field, presenceOf(connection, nodeId), heldOf(connection), connection.policy, this.prefix, nodeId, connection.id, String(connection.since)
    ]) as [string, string, string]
    const why: Eviction = connection.policy === 'replace' ? 'replaced' : 'rejected'
    if (result === 'lost') return await node.evict(connection.endpoint, connection.user, connection.id, why)
    if (result === 'won') void this.handoff(JSON.parse(otherText) as Presence, connection.endpoint, connection.user, why)
    if (entryText !== '') void node.reportLost(connection.endpoint, connection.user, (JSON.parse(entryText) as Held).p)
    if (reopen) node.reopen(connection.endpoint, connection.user, connection.id)
  }

  private async tick (): Promise<void> {
    if (this.current === 'down') return
    try {
      await this.renewLease()
    } catch (err) {
      this.failed('lease', err as Error)
      return
    }
    // a node that just (re)joined gives the others one lease to register again before it reaps anyone
    if (Date.now() - this.upSince >= this.options.presenceTtlMs) await this.sweep().catch((err: Error) => this.failed('sweep', err))
  }

  /** Nodes whose lease has expired: the first survivor to remove one from the set reaps it. */
  private async sweep (): Promise<void> {
    const { nodeId } = this.options
    const others = (await this.cmd.smembers(this.key('nodes'))).filter((n) => n !== nodeId)
    if (others.length === 0) return
    const alive = await Promise.all(others.map(async (n) => await this.cmd.exists(this.leaseKey(n))))
    for (const [i, dead] of others.entries()) {
      if (alive[i] === 0 && await this.cmd.srem(this.key('nodes'), dead) === 1) await this.reap(dead)
    }
  }

  private async reap (dead: string): Promise<void> {
    const node = this.node as LocalNode
    const { nodeId, log, metrics } = this.options
    const taken = await this.script(REAP, [], [this.prefix, dead, nodeId]) as string[]
    log.warn({ node: dead, users: taken.length / 2 }, 'gateway node lost (its lease expired); reporting its users closed (1006)')
    for (let i = 0; i < taken.length; i += 2) {
      const field = taken[i]
      const at = field.indexOf(':')
      const endpoint = field.slice(0, at)
      const user = field.slice(at + 1)
      const entry = JSON.parse(taken[i + 1]) as Held
      metrics.clusterLostUsers.inc({ endpoint })
      const report = node.reportLost(endpoint, user, entry.p).finally(() => {
        this.reaping.delete(field)
        this.release({ endpoint, user, id: `reap:${entry.c}`, params: entry.p, since: entry.s, policy: 'replace' })
      })
      this.reaping.set(field, report)
    }
  }

  private setState (state: BrokerState): void {
    if (state === this.current) return
    this.current = state
    this.options.metrics.brokerUp.set(state === 'up' ? 1 : 0)
    if (state === 'down') {
      this.downSince = Date.now()
      // a hand-off in flight will not be answered; its claim proceeds at its timeout
      if (!this.closed) this.options.log.warn({ redis: this.target }, 'redis unreachable: serving the clients held here; cross-node duplicates and forwards are paused')
    } else {
      this.lossLogged = false
      this.options.log.info({ redis: this.target, node: this.options.nodeId }, 'joined the cluster')
    }
    this.emit('state', state)
  }

  private failed (op: string, err: Error): void {
    this.options.metrics.brokerErrors.inc({ op })
    this.options.log.warn({ op, err: err.message }, 'redis operation failed')
  }

  /** EVALSHA, loading the script on the first NOSCRIPT (after a Redis restart too). */
  private async script (lua: string, keys: string[], args: string[]): Promise<unknown> {
    const sha = sha1(lua)
    try {
      return await this.cmd.evalsha(sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!(err as Error).message.startsWith('NOSCRIPT')) throw err
      return await this.cmd.eval(lua, keys.length, ...keys, ...args)
    }
  }

  private key (name: string): string {
    return `${this.prefix}${name}`
  }

  private leaseKey (node: string): string {
    return this.key(`lease:${node}`)
  }

  private heldKey (node: string): string {
    return this.key(`held:${node}`)
  }

  private presenceKey (field: string): string {
    return this.key(`p:${field}`)
  }

  private nodeChannel (node: string): string {
    return this.key(`node:${node}`)
  }
}

/** Deliveries a list of actions stands for: its named users, and 1 for each `all`. */
function weight (actions: readonly ClientAction[]): number {
  return actions.reduce((n, a) => n + Math.max(1, targetCount(a)), 0)
}

const shas = new Map<string, string>()
function sha1 (text: string): string {
  let sha = shas.get(text)
  if (sha === undefined) {
    sha = createHash('sha1').update(text).digest('hex')
    shas.set(text, sha)
  }
  return sha
}

function fieldOf (connection: Pick<Connection, 'endpoint' | 'user'>): string {
  return `${connection.endpoint}:${connection.user}`
}

function presenceOf (connection: Connection, node: string): string {
  return JSON.stringify({ n: node, c: connection.id, s: connection.since } satisfies Presence)
}

function heldOf (connection: Connection): string {
  return JSON.stringify({ c: connection.id, s: connection.since, p: connection.params } satisfies Held)
}
