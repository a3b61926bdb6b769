/**
 * The cluster's store and bus in one process: a `MemoryHub` stands for
 * Redis, and each node's transport reaches it unless the hub cuts that node
 * off. So several nodes' cluster logic runs in one test, outages included.
 * The store keeps the semantics of the Lua scripts (redis-scripts.ts); the
 * bus, those of Redis pub/sub: in order, at most once, and a node cut off
 * loses its subscriptions.
 */
import { EventEmitter } from 'node:events'
import type { DuplicatePolicy } from '../domain.js'
import type {
  ClaimFound, ClusterBus, ClusterTransport, ConnectionRecord, Decision, LeaseOutcome, PoolStore, Presence, PresenceStore, ReassertFound, Registration, StoredLease, TransportEvents
} from './transport.js'

/** One pool's shared state (pool-scripts.ts has its layout in Redis). */
export interface MemoryPool {
  assignments: Map<string, string>
  holders: Map<string, Set<string>>
  lingers: Map<string, number>
  views: Map<string, Map<string, number>>
  outs: Set<string>
  leases: Map<string, StoredLease & { href: string, exp: number }>
}

/** What Redis would hold, shared by every node of one hub. */
export class MemoryHub {
  readonly leases = new Map<string, number>()
  readonly nodes = new Set<string>()
  readonly presence = new Map<string, Presence>()
  readonly records = new Map<string, Map<string, ConnectionRecord>>()
  readonly reaped = new Set<string>()
  readonly pools = new Map<string, MemoryPool>()
  private readonly transports = new Map<string, MemoryTransport>()
  private readonly cutOff = new Set<string>()

  /** Node `nodeId`'s way in; `ttlMs`: its lease. */
  transport (nodeId: string, ttlMs: number): MemoryTransport {
    const transport = new MemoryTransport(this, nodeId, ttlMs)
    this.transports.set(nodeId, transport)
    return transport
  }

  /** Node `nodeId` loses the hub (its store calls reject, its subscriptions go). */
  cut (nodeId: string): void {
    this.cutOff.add(nodeId)
    this.transports.get(nodeId)?.disconnected()
  }

  /** Node `nodeId` reaches the hub again. */
  restore (nodeId: string): void {
    this.cutOff.delete(nodeId)
    this.transports.get(nodeId)?.reached()
  }

  reaches (nodeId: string): boolean {
    return !this.cutOff.has(nodeId)
  }

  isAlive (node: string): boolean {
    return (this.leases.get(node) ?? 0) > Date.now()
  }

  poolOf (endpoint: string): MemoryPool {
    let pool = this.pools.get(endpoint)
    if (!pool) {
      pool = { assignments: new Map(), holders: new Map(), lingers: new Map(), views: new Map(), outs: new Set(), leases: new Map() }
      this.pools.set(endpoint, pool)
    }
    return pool
  }

  recordsOf (node: string): Map<string, ConnectionRecord> {
    let records = this.records.get(node)
    if (!records) {
      records = new Map()
      this.records.set(node, records)
    }
    return records
  }

  /** Publishes to every transport subscribed to `channel`, each in a later turn (in order); returns how many. */
  publish (channel: string, text: string): number {
    const receivers = [...this.transports.values()].filter((t) => t.listensTo(channel))
    for (const receiver of receivers) setImmediate(() => receiver.deliver(channel, text))
    return receivers.length
  }
}

export class MemoryTransport extends EventEmitter<TransportEvents> implements ClusterTransport {
  readonly presence: PresenceStore
  readonly pools: PoolStore
  readonly bus: ClusterBus
  readonly target = 'memory'
  private connected = false
  private closed = false
  private readonly channels = new Set<string>()
  private readonly receivers: Array<(channel: string, text: string) => void> = []

  constructor (private readonly hub: MemoryHub, private readonly nodeId: string, ttlMs: number) {
    super()
    const reach = async <T>(run: () => T): Promise<T> => await this.reach(run)
    this.presence = new MemoryPresence(hub, nodeId, ttlMs, reach)
    this.pools = new MemoryPools(hub, nodeId, reach)
    this.bus = {
      subscribe: async (channels) => await reach(() => { for (const c of channels) this.channels.add(c) }),
      publish: async (channel, text) => await reach(() => hub.publish(channel, text)),
      onMessage: (listener) => { this.receivers.push(listener) }
    }
  }

  get isUp (): boolean {
    return this.connected
  }

  connect (): void {
    this.reached()
  }

  async close (): Promise<void> {
    this.closed = true
    this.disconnected()
  }

  listensTo (channel: string): boolean {
    return this.connected && this.channels.has(channel)
  }

  deliver (channel: string, text: string): void {
    if (!this.listensTo(channel)) return // gone while in flight: at most once
    for (const receiver of this.receivers) receiver(channel, text)
  }

  disconnected (): void {
    this.channels.clear()
    if (!this.connected) return
    this.connected = false
    this.emit('down')
  }

  reached (): void {
    if (this.closed || this.connected || !this.hub.reaches(this.nodeId)) return
    setImmediate(() => {
      if (this.closed || this.connected || !this.hub.reaches(this.nodeId)) return
      this.connected = true
      this.emit('up')
    })
  }

  /** Runs `run` against the hub in a later turn, as a round trip would, or rejects when this node is cut off. */
  private async reach<T> (run: () => T): Promise<T> {
    await new Promise((resolve) => setImmediate(resolve))
    if (!this.connected) throw new Error('the hub is unreachable')
    return run()
  }
}

/** The store's operations, each atomic (one synchronous run), as the scripts are. */
class MemoryPresence implements PresenceStore {
  constructor (
    private readonly hub: MemoryHub,
    private readonly nodeId: string,
    private readonly ttlMs: number,
    private readonly reach: <T>(run: () => T) => Promise<T>
  ) {}

  async renewLease (): Promise<void> {
    await this.reach(() => {
      this.hub.leases.set(this.nodeId, Date.now() + this.ttlMs)
      this.hub.nodes.add(this.nodeId)
    })
  }

  async leave (): Promise<void> {
    await this.reach(() => {
      this.hub.leases.delete(this.nodeId)
      this.hub.records.delete(this.nodeId)
      this.hub.nodes.delete(this.nodeId)
    })
  }

  async claim ({ field, presence, record }: Registration, policy: DuplicatePolicy): Promise<ClaimFound> {
    return await this.reach(() => {
      const old = this.hub.presence.get(field)
      let alive = false
      let entry: ConnectionRecord | undefined
      if (old && old.n !== this.nodeId) {
        alive = this.hub.isAlive(old.n)
        if (alive && policy === 'reject') return { claimed: false, old, alive, entry: undefined }
        const theirs = this.hub.recordsOf(old.n)
        const h = theirs.get(field)
        if (h?.c === old.c) {
          entry = h
          // a dead node's entry is ours to report now, not the reaper's
          if (!alive) theirs.delete(field)
        }
      }
      this.hub.presence.set(field, presence)
      this.hub.recordsOf(this.nodeId).set(field, record)
      return { claimed: true, old, alive, entry }
    })
  }

  async reassert ({ field, presence, record }: Registration, policy: DuplicatePolicy): Promise<ReassertFound> {
    return await this.reach(() => {
      const cur = this.hub.presence.get(field)
      let result: ReassertFound['result'] = 'set'
      let other: Presence | undefined
      let entry: ConnectionRecord | undefined
      if (cur && cur.c !== presence.c && cur.c !== `reap:${presence.c}` && cur.n !== this.nodeId) {
        if (this.hub.isAlive(cur.n)) {
          const newer = presence.s > cur.s || (presence.s === cur.s && presence.c > cur.c)
          if ((policy === 'replace') !== newer) return { result: 'lost', other: cur, entry: undefined }
          result = 'won'
          other = cur
        } else {
          const theirs = this.hub.recordsOf(cur.n)
          const h = theirs.get(field)
          if (h?.c === cur.c) {
            entry = h
            theirs.delete(field)
          }
        }
      }
      this.hub.presence.set(field, presence)
      this.hub.recordsOf(this.nodeId).set(field, record)
      return { result, other, entry }
    })
  }

  async release (field: string, id: string, holder?: Registration): Promise<void> {
    await this.reach(() => {
      const mine = this.hub.recordsOf(this.nodeId)
      if (this.hub.presence.get(field)?.c === id) {
        if (holder) {
          this.hub.presence.set(field, holder.presence)
          mine.set(field, holder.record)
          return
        }
        this.hub.presence.delete(field)
      }
      if (mine.get(field)?.c === id) mine.delete(field)
    })
  }

  async lookup (fields: string[]): Promise<Array<Presence | undefined>> {
    return await this.reach(() => fields.map((f) => this.hub.presence.get(f)))
  }

  async takeReapedMark (): Promise<boolean> {
    return await this.reach(() => this.hub.reaped.delete(this.nodeId))
  }

  async recordsHere (): Promise<Map<string, ConnectionRecord>> {
    return await this.reach(() => new Map(this.hub.recordsOf(this.nodeId)))
  }

  async otherNodes (): Promise<string[]> {
    return await this.reach(() => [...this.hub.nodes].filter((n) => n !== this.nodeId))
  }

  async isAlive (node: string): Promise<boolean> {
    return await this.reach(() => this.hub.isAlive(node))
  }

  async removeNode (node: string): Promise<boolean> {
    return await this.reach(() => this.hub.nodes.delete(node))
  }

  async reap (node: string): Promise<Array<[string, ConnectionRecord]>> {
    return await this.reach(() => {
      const out: Array<[string, ConnectionRecord]> = []
      const mine = this.hub.recordsOf(this.nodeId)
      for (const [field, e] of this.hub.recordsOf(node)) {
        if (this.hub.presence.get(field)?.c !== e.c) continue
        const tomb = `reap:${e.c}`
        this.hub.presence.set(field, { n: this.nodeId, c: tomb, s: e.s })
        mine.set(field, { c: tomb, s: e.s, p: e.p })
        out.push([field, e])
      }
      this.hub.records.delete(node)
      this.hub.reaped.add(node)
      return out
    })
  }
}

/** Backend pools' shared state in the hub, each operation atomic as its script is (pool-scripts.ts). */
class MemoryPools implements PoolStore {
  constructor (
    private readonly hub: MemoryHub,
    private readonly nodeId: string,
    private readonly reach: <T>(run: () => T) => Promise<T>
  ) {}

  async hold (endpoint: string, key: string, proposed: string): Promise<string> {
    return await this.reach(() => {
      const pool = this.hub.poolOf(endpoint)
      const holders = pool.holders.get(key) ?? new Set()
      holders.add(this.nodeId)
      pool.holders.set(key, holders)
      pool.lingers.delete(key)
      if (!pool.assignments.has(key)) pool.assignments.set(key, proposed)
      return pool.assignments.get(key) as string
    })
  }

  async release (endpoint: string, key: string, lingerMs: number): Promise<void> {
    await this.reach(() => {
      const pool = this.hub.poolOf(endpoint)
      const live = [...pool.holders.get(key) ?? []].filter((n) => n !== this.nodeId && this.hub.nodes.has(n))
      if (live.length > 0) {
        pool.holders.set(key, new Set(live))
        return
      }
      pool.holders.delete(key)
      if (lingerMs <= 0) {
        pool.assignments.delete(key)
        pool.lingers.delete(key)
      } else if (pool.assignments.has(key)) {
        pool.lingers.set(key, Date.now() + lingerMs)
      }
    })
  }

  async assigned (endpoint: string, keys: string[]): Promise<Array<string | undefined>> {
    return await this.reach(() => keys.map((key) => this.hub.poolOf(endpoint).assignments.get(key)))
  }

  async see (endpoint: string, member: string, down: boolean): Promise<void> {
    await this.reach(() => {
      const pool = this.hub.poolOf(endpoint)
      const views = pool.views.get(member) ?? new Map<string, number>()
      for (const node of views.keys()) if (node !== this.nodeId && !this.hub.nodes.has(node)) views.delete(node)
      if (down) {
        if (!views.has(this.nodeId)) views.set(this.nodeId, Date.now())
      } else {
        views.delete(this.nodeId)
        pool.outs.delete(member)
      }
      if (views.size === 0) pool.views.delete(member)
      else pool.views.set(member, views)
    })
  }

  async decide (endpoint: string, member: string, failoverMs: number): Promise<Decision> {
    return await this.reach((): Decision => {
      const pool = this.hub.poolOf(endpoint)
      if (pool.outs.has(member)) return { outcome: 'out' }
      const views = pool.views.get(member) ?? new Map<string, number>()
      const now = Date.now()
      const votes = [...this.hub.nodes].filter((n) => { const since = views.get(n); return since !== undefined && now - since >= failoverMs }).length
      if (votes * 2 <= this.hub.nodes.size) return { outcome: 'wait' }
      pool.outs.add(member)
      return { outcome: 'won', keys: [...pool.assignments].filter(([, m]) => m === member).map(([key]) => key) }
    })
  }

  async outs (endpoint: string): Promise<string[]> {
    return await this.reach(() => [...this.hub.poolOf(endpoint).outs])
  }

  async keysOn (endpoint: string, member: string): Promise<string[]> {
    return await this.reach(() => [...this.hub.poolOf(endpoint).assignments].filter(([, m]) => m === member).map(([key]) => key))
  }

  async move (endpoint: string, dead: string, moves: Array<[string, string]>): Promise<number> {
    return await this.reach(() => {
      const { assignments } = this.hub.poolOf(endpoint)
      let moved = 0
      for (const [key, heir] of moves) {
        if (assignments.get(key) !== dead) continue
        assignments.set(key, heir)
        moved++
      }
      return moved
    })
  }

  async sweep (endpoint: string, lingerMs: number): Promise<void> {
    await this.reach(() => {
      const pool = this.hub.poolOf(endpoint)
      const now = Date.now()
      for (const key of pool.assignments.keys()) {
        if ([...pool.holders.get(key) ?? []].some((n) => this.hub.nodes.has(n))) continue
        pool.holders.delete(key)
        if (!pool.lingers.has(key)) pool.lingers.set(key, now + lingerMs)
      }
      for (const key of pool.holders.keys()) if (!pool.assignments.has(key)) pool.holders.delete(key)
      for (const [key, deadline] of pool.lingers) {
        if (deadline > now) continue
        pool.lingers.delete(key)
        if (!pool.holders.has(key)) pool.assignments.delete(key)
      }
    })
  }

  async register (endpoint: string, lease: StoredLease & { href: string }, leaseMs: number, maxMembers: number): Promise<LeaseOutcome> {
    return await this.reach((): LeaseOutcome => {
      const { leases } = this.hub.poolOf(endpoint)
      const now = Date.now()
      const live = [...leases].filter(([, l]) => l.exp > now)
      const mine = live.find(([id]) => id === lease.id)?.[1]
      if (mine !== undefined && mine.href !== lease.href) return { outcome: 'url_changed' }
      const holder = live.find(([id, l]) => id !== lease.id && l.href === lease.href)
      if (holder !== undefined) return { outcome: 'url_in_use', holder: holder[0] }
      if (mine === undefined && live.filter(([id]) => id !== lease.id).length >= maxMembers) return { outcome: 'full' }
      leases.set(lease.id, { ...lease, exp: now + leaseMs })
      return { outcome: mine === undefined ? 'created' : 'renewed' }
    })
  }

  async leases (endpoint: string): Promise<StoredLease[]> {
    return await this.reach(() => [...this.hub.poolOf(endpoint).leases].map(([id, l]) => ({ id, url: l.url, weight: l.weight })))
  }

  async expired (endpoint: string): Promise<string[]> {
    return await this.reach(() => [...this.hub.poolOf(endpoint).leases].filter(([, l]) => l.exp <= Date.now()).map(([id]) => id))
  }

  async drop (endpoint: string, id: string, expired: boolean, moves: Array<[string, string]>): Promise<{ dropped: boolean, left: string[] }> {
    return await this.reach(() => {
      const pool = this.hub.poolOf(endpoint)
      const lease = pool.leases.get(id)
      if (lease === undefined || (expired && lease.exp > Date.now())) return { dropped: false, left: [] }
      pool.leases.delete(id)
      pool.outs.add(id)
      for (const [key, heir] of moves) if (pool.assignments.get(key) === id) pool.assignments.set(key, heir)
      return { dropped: true, left: [...pool.assignments].filter(([, m]) => m === id).map(([key]) => key) }
    })
  }
}
