/**
 * Pool members registered at run time (docs/pools.md, "Joining at run
 * time"; protocol/PROTOCOL.md §10): each is a lease that lasts `leaseMs`
 * unless renewed by the same registration, and ends on `deregister` or
 * expiry, when its keys move as for a member that is out. Members from the
 * config are never touched here; at most `maxMembers` run-time members per
 * endpoint, so a leaked admin token cannot grow memory without bound.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { AdminConfig, PoolMemberConfig } from '../config/schema.js'
import type { BackendPool, MemberReport } from './pool.js'

export interface LeasedPool {
  pool: BackendPool
  /** The members from the config. */
  configured: readonly PoolMemberConfig[]
}

interface Lease {
  url: string
  timer: NodeJS.Timeout
}

export type RegisterOutcome =
  | { ok: true, created: boolean, leaseMs: number }
  | { ok: false, why: 'configured_id' | 'configured_url' | 'url_in_use' | 'url_changed' | 'full', detail: string }

export type MemberListing = MemberReport & { lease: boolean }

/** What the admin routes need: run-time members of one gateway (PoolLeases) or of a cluster (cluster-leases.ts). */
export interface MemberLeases {
  readonly leaseMs: number
  has (endpoint: string): boolean
  configured (endpoint: string, id: string): boolean
  register (endpoint: string, member: PoolMemberConfig): RegisterOutcome | Promise<RegisterOutcome>
  deregister (endpoint: string, id: string): boolean | Promise<boolean>
  list (endpoint: string): { state: string, members: MemberListing[] } | Promise<{ state: string, members: MemberListing[] }>
  close (): void
}

/** URLs compare as `ws` dials them: `ws://H:80` and `ws://h/` are one member. */
export function sameUrl (a: string, b: string): boolean {
  return new URL(a).href === new URL(b).href
}

/** A registration that clashes with a member from the config, refused. */
export function configuredConflict (endpoint: string, configured: readonly PoolMemberConfig[], member: PoolMemberConfig): RegisterOutcome | undefined {
  if (configured.some((m) => m.id === member.id)) return { ok: false, why: 'configured_id', detail: `member "${member.id}" is in the config of endpoint "${endpoint}"` }
  if (configured.some((m) => sameUrl(m.url, member.url))) return { ok: false, why: 'configured_url', detail: `this url is a member in the config of endpoint "${endpoint}"` }
  return undefined
}

/** The message of a refusal, as both kinds of leases word it. */
export const REFUSALS = {
  url_changed: (id: string) => `member "${id}" is registered with another url: DELETE it first`,
  url_in_use: (holder: string) => `this url is already registered as member "${holder}"`,
  full: (endpoint: string, max: number) => `endpoint "${endpoint}" already has admin.maxMembers (${max}) members registered at run time`
}

export class PoolLeases implements MemberLeases {
  private readonly leases = new Map<string, Map<string, Lease>>()

  constructor (
    private readonly pools: ReadonlyMap<string, LeasedPool>,
    private readonly admin: Readonly<AdminConfig>,
    private readonly log: FastifyBaseLogger
  ) {
    for (const endpoint of pools.keys()) this.leases.set(endpoint, new Map())
  }

  get leaseMs (): number {
    return this.admin.leaseMs
  }

  has (endpoint: string): boolean {
    return this.pools.has(endpoint)
  }

  /** Registers `member` on a known endpoint, or renews its lease (a new weight applies to new keys). */
  register (endpoint: string, member: PoolMemberConfig): RegisterOutcome {
    const { pool, configured } = this.pools.get(endpoint) as LeasedPool
    const leases = this.leases.get(endpoint) as Map<string, Lease>
    const conflict = configuredConflict(endpoint, configured, member)
    if (conflict !== undefined) return conflict
    const lease = leases.get(member.id)
    if (lease !== undefined && !sameUrl(lease.url, member.url)) return { ok: false, why: 'url_changed', detail: REFUSALS.url_changed(member.id) }
    const holder = [...leases].find(([id, l]) => id !== member.id && sameUrl(l.url, member.url))
    if (holder) return { ok: false, why: 'url_in_use', detail: REFUSALS.url_in_use(holder[0]) }
    if (lease === undefined && leases.size >= this.admin.maxMembers) return { ok: false, why: 'full', detail: REFUSALS.full(endpoint, this.admin.maxMembers) }
    clearTimeout(lease?.timer)
    const timer = setTimeout(() => this.expire(endpoint, member.id), this.admin.leaseMs)
    timer.unref()
    leases.set(member.id, { url: member.url, timer })
    pool.join(member)
    if (lease === undefined) this.log.info({ endpoint, member: member.id, url: new URL(member.url).host, weight: member.weight }, 'pool member registered')
    return { ok: true, created: lease === undefined, leaseMs: this.admin.leaseMs }
  }

  /** Ends a run-time member's lease: its keys move to the others. False when there is no such lease. */
  deregister (endpoint: string, id: string): boolean {
    const lease = this.leases.get(endpoint)?.get(id)
    if (lease === undefined) return false
    this.end(endpoint, id, lease)
    this.log.info({ endpoint, member: id }, 'pool member deregistered')
    return true
  }

  /** Whether `id` is a member from the config of `endpoint`. */
  configured (endpoint: string, id: string): boolean {
    return this.pools.get(endpoint)?.configured.some((m) => m.id === id) ?? false
  }

  /** The endpoint's state (`up` while a member is) and every member, each with `lease` true when registered at run time. */
  list (endpoint: string): { state: string, members: MemberListing[] } {
    const { pool } = this.pools.get(endpoint) as LeasedPool
    const leases = this.leases.get(endpoint) as Map<string, Lease>
    return { state: pool.state, members: pool.describe().map((m) => ({ ...m, lease: leases.has(m.id) })) }
  }

  close (): void {
    for (const leases of this.leases.values()) {
      for (const lease of leases.values()) clearTimeout(lease.timer)
      leases.clear()
    }
  }

  private expire (endpoint: string, id: string): void {
    const lease = this.leases.get(endpoint)?.get(id)
    if (lease === undefined) return
    this.log.warn({ endpoint, member: id, leaseMs: this.admin.leaseMs }, 'pool member lease expired (not renewed): it leaves the pool')
    this.end(endpoint, id, lease)
  }

  private end (endpoint: string, id: string, lease: Lease): void {
    clearTimeout(lease.timer)
    this.leases.get(endpoint)?.delete(id)
    this.pools.get(endpoint)?.pool.leave(id)
  }
}
