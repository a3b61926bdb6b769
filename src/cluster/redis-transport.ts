/**
 * The cluster's store and bus over Redis: two connections, one for commands
 * and publishes, one subscribed; the layout and the scripts are in
 * redis-scripts.ts. Fails fast while Redis is away: the node carries on
 * without it (docs/scaling.md).
 */
import { EventEmitter } from 'node:events'
import { Redis, type Result } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import type { DuplicatePolicy } from '../domain.js'
import { CLAIM, REAP, REASSERT, RELEASE } from './redis-scripts.js'
import { POOL_DECIDE, POOL_DROP, POOL_EXPIRED, POOL_HOLD, POOL_KEYS_ON, POOL_MOVE, POOL_REGISTER, POOL_RELEASE, POOL_SEE, POOL_SWEEP } from './pool-scripts.js'
import type {
  ClaimFound, ClusterBus, ClusterTransport, ConnectionRecord, Decision, LeaseOutcome, PoolStore, Presence, PresenceStore, ReassertFound, Registration, StoredLease, TransportEvents
} from './transport.js'

/** The scripts as ioredis commands (arguments as redis-scripts.ts documents them; nested arrays are flattened). */
declare module 'ioredis' {
  interface RedisCommander<Context> {
    gatehouseClaim (keys: ClaimKeys, field: string, presence: string, record: string, policy: DuplicatePolicy, node: string, seen: string): Result<[string, number, string, number] | null, Context>
    gatehouseReassert (keys: ClaimKeys, field: string, presence: string, record: string, policy: DuplicatePolicy, node: string, id: string, since: string, seen: string): Result<[string, string, string] | null, Context>
    gatehouseRelease (presenceKey: string, recordsKey: string, field: string, id: string, ...holder: [] | [presence: string, record: string]): Result<number, Context>
    gatehouseReap (numberOfKeys: number, keys: string[], node: string, fields: string[]): Result<string[] | null, Context>
    gatehousePoolHold (assignments: string, holders: string, lingers: string, key: string, proposed: string, node: string): Result<unknown, Context>
    gatehousePoolRelease (assignments: string, holders: string, lingers: string, nodes: string, key: string, node: string, lingerMs: number): Result<unknown, Context>
    gatehousePoolSweep (assignments: string, holders: string, lingers: string, nodes: string, lingerMs: number): Result<unknown, Context>
    gatehousePoolSee (views: string, outs: string, nodes: string, member: string, node: string, view: 'down' | 'up'): Result<unknown, Context>
    gatehousePoolDecide (views: string, outs: string, nodes: string, assignments: string, member: string, failoverMs: number): Result<unknown, Context>
    gatehousePoolKeysOn (assignments: string, member: string): Result<unknown, Context>
    gatehousePoolMove (assignments: string, dead: string, ...moves: string[]): Result<unknown, Context>
    gatehousePoolRegister (leases: string, id: string, url: string, href: string, weight: number, leaseMs: number, maxMembers: number): Result<unknown, Context>
    gatehousePoolExpired (leases: string): Result<unknown, Context>
    gatehousePoolDrop (leases: string, outs: string, assignments: string, id: string, mode: 'delete' | 'expire', ...moves: string[]): Result<unknown, Context>
  }
}

/** Presence, my records, and the lease and records of the node named in presence. */
type ClaimKeys = [string, string, string, string]

export interface RedisTransportOptions {
  url: string
  /** `cluster.name`: the key prefix. */
  name: string
  nodeId: string
  presenceTtlMs: number
  log: FastifyBaseLogger
}

export class RedisTransport extends EventEmitter<TransportEvents> implements ClusterTransport {
  readonly presence: PresenceStore
  readonly pools: PoolStore
  readonly bus: ClusterBus
  private readonly cmd: Redis
  private readonly sub: Redis

  constructor (private readonly options: RedisTransportOptions) {
    super()
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
    this.cmd.defineCommand('gatehouseClaim', { numberOfKeys: 4, lua: CLAIM })
    this.cmd.defineCommand('gatehouseReassert', { numberOfKeys: 4, lua: REASSERT })
    this.cmd.defineCommand('gatehouseRelease', { numberOfKeys: 2, lua: RELEASE })
    // one key per field of the dead node: the count comes with each call
    this.cmd.defineCommand('gatehouseReap', { lua: REAP })
    this.cmd.defineCommand('gatehousePoolHold', { numberOfKeys: 3, lua: POOL_HOLD })
    this.cmd.defineCommand('gatehousePoolRelease', { numberOfKeys: 4, lua: POOL_RELEASE })
    this.cmd.defineCommand('gatehousePoolSweep', { numberOfKeys: 4, lua: POOL_SWEEP })
    this.cmd.defineCommand('gatehousePoolSee', { numberOfKeys: 3, lua: POOL_SEE })
    this.cmd.defineCommand('gatehousePoolDecide', { numberOfKeys: 4, lua: POOL_DECIDE })
    this.cmd.defineCommand('gatehousePoolKeysOn', { numberOfKeys: 1, lua: POOL_KEYS_ON })
    this.cmd.defineCommand('gatehousePoolMove', { numberOfKeys: 1, lua: POOL_MOVE })
    this.cmd.defineCommand('gatehousePoolRegister', { numberOfKeys: 1, lua: POOL_REGISTER })
    this.cmd.defineCommand('gatehousePoolExpired', { numberOfKeys: 1, lua: POOL_EXPIRED })
    this.cmd.defineCommand('gatehousePoolDrop', { numberOfKeys: 3, lua: POOL_DROP })
    const keys = new RedisKeys(`${options.name}:`)
    this.presence = new RedisPresence(this.cmd, keys, options.nodeId, options.presenceTtlMs)
    this.pools = new RedisPools(this.cmd, keys, options.nodeId)
    this.bus = new RedisBus(this.cmd, this.sub, keys)
  }

  get isUp (): boolean {
    return this.cmd.status === 'ready' && this.sub.status === 'ready'
  }

  get target (): string {
    const url = new URL(this.options.url)
    return `${url.protocol}//${url.host}${url.pathname}`
  }

  connect (): void {
    for (const redis of [this.cmd, this.sub]) {
      redis.on('ready', () => { if (this.isUp) this.emit('up') })
      redis.on('close', () => this.emit('down'))
      redis.on('error', (err: Error) => this.options.log.debug({ err: err.message, redis: this.target }, 'redis connection error'))
      redis.connect().catch(() => { /* retried by ioredis; 'error' has logged it */ })
    }
  }

  async close (): Promise<void> {
    this.sub.disconnect()
    await this.cmd.quit().catch(() => this.cmd.disconnect())
  }
}

class RedisKeys {
  constructor (readonly prefix: string) {}

  key (name: string): string {
    return `${this.prefix}${name}`
  }

  lease (node: string): string {
    return this.key(`lease:${node}`)
  }

  /** A node's records (ConnectionRecord); the key keeps its first name, `held:`, so running clusters keep their state. */
  records (node: string): string {
    return this.key(`held:${node}`)
  }

  reaped (node: string): string {
    return this.key(`reaped:${node}`)
  }

  presence (field: string): string {
    return this.key(`p:${field}`)
  }

  /** One of a pool's keys (pool-scripts.ts): `a` assignments, `h` holders, `l` lingers, `d` views, `o` outs, `m` leases. */
  pool (endpoint: string, part: 'a' | 'h' | 'l' | 'd' | 'o' | 'm'): string {
    return this.key(`pool:${endpoint}:${part}`)
  }
}

/** Backend pools' shared state over Redis (pool-scripts.ts). Replies are checked: Redis is not trusted to hold what we wrote. */
class RedisPools implements PoolStore {
  constructor (private readonly cmd: Redis, private readonly keys: RedisKeys, private readonly nodeId: string) {}

  async hold (endpoint: string, key: string, proposed: string): Promise<string> {
    const k = this.keys
    const member = await this.cmd.gatehousePoolHold(k.pool(endpoint, 'a'), k.pool(endpoint, 'h'), k.pool(endpoint, 'l'), key, proposed, this.nodeId)
    if (typeof member !== 'string') throw new Error('pool hold: a reply that is not a member id')
    return member
  }

  async release (endpoint: string, key: string, lingerMs: number): Promise<void> {
    const k = this.keys
    await this.cmd.gatehousePoolRelease(k.pool(endpoint, 'a'), k.pool(endpoint, 'h'), k.pool(endpoint, 'l'), k.key('nodes'), key, this.nodeId, lingerMs)
  }

  async assigned (endpoint: string, keys: string[]): Promise<Array<string | undefined>> {
    if (keys.length === 0) return []
    const found = await this.cmd.hmget(this.keys.pool(endpoint, 'a'), ...keys)
    return found.map((member) => member ?? undefined)
  }

  async see (endpoint: string, member: string, down: boolean): Promise<void> {
    await this.cmd.gatehousePoolSee(this.keys.pool(endpoint, 'd'), this.keys.pool(endpoint, 'o'), this.keys.key('nodes'), member, this.nodeId, down ? 'down' : 'up')
  }

  async decide (endpoint: string, member: string, failoverMs: number): Promise<Decision> {
    const k = this.keys
    const reply = strings(await this.cmd.gatehousePoolDecide(k.pool(endpoint, 'd'), k.pool(endpoint, 'o'), k.key('nodes'), k.pool(endpoint, 'a'), member, failoverMs))
    const [outcome, ...keys] = reply
    if (outcome === 'won') return { outcome, keys }
    if (outcome === 'out' || outcome === 'wait') return { outcome }
    throw new Error('pool decide: an unknown reply')
  }

  async outs (endpoint: string): Promise<string[]> {
    return await this.cmd.smembers(this.keys.pool(endpoint, 'o'))
  }

  async keysOn (endpoint: string, member: string): Promise<string[]> {
    return strings(await this.cmd.gatehousePoolKeysOn(this.keys.pool(endpoint, 'a'), member))
  }

  async move (endpoint: string, dead: string, moves: Array<[string, string]>): Promise<number> {
    if (moves.length === 0) return 0
    return Number(await this.cmd.gatehousePoolMove(this.keys.pool(endpoint, 'a'), dead, ...moves.flat()))
  }

  async sweep (endpoint: string, lingerMs: number): Promise<void> {
    const k = this.keys
    await this.cmd.gatehousePoolSweep(k.pool(endpoint, 'a'), k.pool(endpoint, 'h'), k.pool(endpoint, 'l'), k.key('nodes'), lingerMs)
  }

  async register (endpoint: string, lease: StoredLease & { href: string }, leaseMs: number, maxMembers: number): Promise<LeaseOutcome> {
    const [outcome, holder] = strings(await this.cmd.gatehousePoolRegister(this.keys.pool(endpoint, 'm'), lease.id, lease.url, lease.href, lease.weight, leaseMs, maxMembers))
    if (outcome === 'url_in_use' && holder !== undefined) return { outcome, holder }
    if (outcome === 'created' || outcome === 'renewed' || outcome === 'url_changed' || outcome === 'full') return { outcome }
    throw new Error('pool register: an unknown reply')
  }

  async leases (endpoint: string): Promise<StoredLease[]> {
    const all = await this.cmd.hgetall(this.keys.pool(endpoint, 'm'))
    return Object.entries(all).flatMap(([id, text]) => leaseOf(id, text))
  }

  async expired (endpoint: string): Promise<string[]> {
    return strings(await this.cmd.gatehousePoolExpired(this.keys.pool(endpoint, 'm')))
  }

  async drop (endpoint: string, id: string, expired: boolean, moves: Array<[string, string]>): Promise<{ dropped: boolean, left: string[] }> {
    const k = this.keys
    const [outcome, ...left] = strings(await this.cmd.gatehousePoolDrop(k.pool(endpoint, 'm'), k.pool(endpoint, 'o'), k.pool(endpoint, 'a'), id, expired ? 'expire' : 'delete', ...moves.flat()))
    return { dropped: outcome === 'dropped', left }
  }
}

/** A stored lease, checked: [] for one not of the form POOL_REGISTER writes ({url, href, weight > 0, exp}). */
function leaseOf (id: string, text: string): StoredLease[] {
  try {
    const { url, href, weight, exp } = JSON.parse(text) as { url?: unknown, href?: unknown, weight?: unknown, exp?: unknown }
    const valid = typeof url === 'string' && typeof href === 'string' && typeof weight === 'number' && weight > 0 && typeof exp === 'number' && id !== ''
    return valid ? [{ id, url, weight }] : []
  } catch {
    return []
  }
}

/** A script's array-of-strings reply, or an error for anything else. */
function strings (reply: unknown): string[] {
  if (!Array.isArray(reply) || !reply.every((s) => typeof s === 'string')) throw new Error('a pool script reply that is not a list of strings')
  return reply as string[]
}

class RedisPresence implements PresenceStore {
  constructor (
    private readonly cmd: Redis,
    private readonly keys: RedisKeys,
    private readonly nodeId: string,
    private readonly ttlMs: number
  ) {}

  async renewLease (): Promise<void> {
    await Promise.all([
      this.cmd.set(this.keys.lease(this.nodeId), '1', 'PX', this.ttlMs),
      this.cmd.sadd(this.keys.key('nodes'), this.nodeId)
    ])
  }

  async leave (): Promise<void> {
    await Promise.all([
      this.cmd.del(this.keys.lease(this.nodeId), this.keys.records(this.nodeId)),
      this.cmd.srem(this.keys.key('nodes'), this.nodeId)
    ])
  }

  async claim ({ field, presence, record }: Registration, policy: DuplicatePolicy): Promise<ClaimFound> {
    for (;;) {
      const seen = await this.nodeAt(field)
      const reply = await this.cmd.gatehouseClaim(this.keysAround(field, seen),
        field, JSON.stringify(presence), JSON.stringify(record), policy, this.nodeId, seen)
      if (reply === null) continue // another node registered the user meanwhile: look again
      const [old, alive, entry, claimed] = reply
      return { claimed: claimed === 1, old: parse<Presence>(old), alive: alive === 1, entry: parse<ConnectionRecord>(entry) }
    }
  }

  async reassert ({ field, presence, record }: Registration, policy: DuplicatePolicy): Promise<ReassertFound> {
    for (;;) {
      const seen = await this.nodeAt(field)
      const reply = await this.cmd.gatehouseReassert(this.keysAround(field, seen),
        field, JSON.stringify(presence), JSON.stringify(record), policy, this.nodeId, presence.c, String(presence.s), seen)
      if (reply === null) continue
      const [result, other, entry] = reply
      return { result: result as ReassertFound['result'], other: parse<Presence>(other), entry: parse<ConnectionRecord>(entry) }
    }
  }

  async release (field: string, id: string, holder?: Registration): Promise<void> {
    const instead: [] | [string, string] = holder ? [JSON.stringify(holder.presence), JSON.stringify(holder.record)] : []
    await this.cmd.gatehouseRelease(this.keys.presence(field), this.keys.records(this.nodeId), field, id, ...instead)
  }

  async lookup (fields: string[]): Promise<Array<Presence | undefined>> {
    if (fields.length === 0) return []
    const found = await this.cmd.mget(fields.map((f) => this.keys.presence(f)))
    return found.map((text) => parse<Presence>(text ?? ''))
  }

  async takeReapedMark (): Promise<boolean> {
    return await this.cmd.del(this.keys.reaped(this.nodeId)) === 1
  }

  async recordsHere (): Promise<Map<string, ConnectionRecord>> {
    const recorded = await this.cmd.hgetall(this.keys.records(this.nodeId))
    return new Map(Object.entries(recorded).map(([field, text]) => [field, JSON.parse(text) as ConnectionRecord]))
  }

  async otherNodes (): Promise<string[]> {
    return (await this.cmd.smembers(this.keys.key('nodes'))).filter((n) => n !== this.nodeId)
  }

  async isAlive (node: string): Promise<boolean> {
    return await this.cmd.exists(this.keys.lease(node)) === 1
  }

  async removeNode (node: string): Promise<boolean> {
    return await this.cmd.srem(this.keys.key('nodes'), node) === 1
  }

  async reap (node: string): Promise<Array<[string, ConnectionRecord]>> {
    for (;;) {
      const fields = await this.cmd.hkeys(this.keys.records(node))
      const keys = [this.keys.records(node), this.keys.records(this.nodeId), this.keys.reaped(node), ...fields.map((f) => this.keys.presence(f))]
      const taken = await this.cmd.gatehouseReap(keys.length, keys, this.nodeId, fields)
      if (taken === null) continue // the dead node's records changed meanwhile: read them again
      const out: Array<[string, ConnectionRecord]> = []
      for (let i = 0; i < taken.length; i += 2) out.push([taken[i], JSON.parse(taken[i + 1]) as ConnectionRecord])
      return out
    }
  }

  /** The node named in a field's presence, '' for none. */
  private async nodeAt (field: string): Promise<string> {
    return parse<Presence>(await this.cmd.get(this.keys.presence(field)) ?? '')?.n ?? ''
  }

  /** A claim's keys: the presence, my records, and the lease and records of the node named there (mine for none). */
  private keysAround (field: string, node: string): ClaimKeys {
    const other = node === '' ? this.nodeId : node
    return [this.keys.presence(field), this.keys.records(this.nodeId), this.keys.lease(other), this.keys.records(other)]
  }
}

class RedisBus implements ClusterBus {
  constructor (private readonly cmd: Redis, private readonly sub: Redis, private readonly keys: RedisKeys) {}

  async subscribe (channels: string[]): Promise<void> {
    await this.sub.subscribe(...channels.map((c) => this.keys.key(c)))
  }

  async publish (channel: string, text: string): Promise<number> {
    return await this.cmd.publish(this.keys.key(channel), text)
  }

  onMessage (listener: (channel: string, text: string) => void): void {
    const { prefix } = this.keys
    this.sub.on('message', (channel: string, text: string) => listener(channel.slice(prefix.length), text))
  }
}

/** A JSON reply, '' for none. */
function parse<T> (text: string): T | undefined {
  return text === '' ? undefined : JSON.parse(text) as T
}
