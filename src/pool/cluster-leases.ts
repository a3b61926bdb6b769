/**
 * Run-time pool members of a cluster (docs/pools.md, "Clusters"): the
 * leases live in the cluster's store, so a registration, renewal or DELETE
 * through any node counts for all, and `admin.maxMembers` bounds the
 * endpoint's run-time members cluster-wide. Each node applies the stored
 * set to its own pool (join, weight, leave) when a node says it changed,
 * and every `periodMs` (the bus is at most once). A lease that runs out is
 * ended once, by the first node to see it, which moves its keys as the
 * one deciding a failover does; the others re-home their clients to the
 * keys' new members.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { AdminConfig, PoolMemberConfig } from '../config/schema.js'
import { memberUrlProblem } from '../config/member-url.js'
import { GW_ERR_POOL_STORE_UNAVAILABLE } from '../errors.js'
import type { GatewayMetrics } from '../metrics.js'
import type { PoolStore, StoredLease } from '../cluster/transport.js'
import type { PoolCluster } from './cluster-directory.js'
import { configuredConflict, REFUSALS, sameUrl, type LeasedPool, type MemberLeases, type MemberListing, type RegisterOutcome } from './leases.js'
import { brokerFailure, type BrokerFailure } from '../cluster/broker-failure.js'

export interface ClusterLeasesOptions {
  pools: ReadonlyMap<string, LeasedPool>
  admin: Readonly<AdminConfig>
  cluster: PoolCluster
  periodMs: number
  metrics: GatewayMetrics
  log: FastifyBaseLogger
}

export class ClusterLeases implements MemberLeases {
  private readonly failed: BrokerFailure
  /** The run-time members applied to each endpoint's pool here, by id. */
  private readonly applied = new Map<string, Map<string, StoredLease>>()
  private readonly timer: NodeJS.Timeout
  private ticking = false

  constructor (private readonly options: ClusterLeasesOptions) {
    this.failed = brokerFailure(options)
    for (const endpoint of options.pools.keys()) this.applied.set(endpoint, new Map())
    options.cluster.onPoolNotice((endpoint, _member, what) => {
      if (what === 'members' && options.pools.has(endpoint)) this.apply(endpoint).catch((err: Error) => this.failed('pool_members', err))
    })
    this.timer = setInterval(() => { void this.tick() }, options.periodMs)
    this.timer.unref()
  }

  get leaseMs (): number {
    return this.options.admin.leaseMs
  }

  private get store (): PoolStore {
    return this.options.cluster.pools
  }

  has (endpoint: string): boolean {
    return this.options.pools.has(endpoint)
  }

  configured (endpoint: string, id: string): boolean {
    return this.options.pools.get(endpoint)?.configured.some((m) => m.id === id) ?? false
  }

  async register (endpoint: string, member: PoolMemberConfig): Promise<RegisterOutcome> {
    const { pools, admin, cluster, log } = this.options
    const conflict = configuredConflict(endpoint, (pools.get(endpoint) as LeasedPool).configured, member)
    if (conflict !== undefined) return conflict
    const found = await this.reach(async () => await this.store.register(endpoint, { ...member, href: new URL(member.url).href }, admin.leaseMs, admin.maxMembers))
    switch (found.outcome) {
      case 'url_changed': return { ok: false, why: 'url_changed', detail: REFUSALS.url_changed(member.id) }
      case 'url_in_use': return { ok: false, why: 'url_in_use', detail: REFUSALS.url_in_use(found.holder) }
      case 'full': return { ok: false, why: 'full', detail: REFUSALS.full(endpoint, admin.maxMembers) }
    }
    const known = this.applied.get(endpoint)?.get(member.id)
    if (found.outcome === 'created' || known?.weight !== member.weight) {
      if (found.outcome === 'created') log.info({ endpoint, member: member.id, url: new URL(member.url).host, weight: member.weight }, 'pool member registered')
      await this.apply(endpoint).catch((err: Error) => this.failed('pool_members', err))
      cluster.notifyPools(endpoint, member.id, 'members')
    }
    return { ok: true, created: found.outcome === 'created', leaseMs: admin.leaseMs }
  }

  async deregister (endpoint: string, id: string): Promise<boolean> {
    const dropped = await this.reach(async () => await this.drop(endpoint, id, false))
    if (dropped) this.options.log.info({ endpoint, member: id }, 'pool member deregistered')
    return dropped
  }

  async list (endpoint: string): Promise<{ state: string, members: MemberListing[] }> {
    // registrations made through other nodes count here at once, even before their notice arrives
    await this.apply(endpoint).catch((err: Error) => this.failed('pool_members', err))
    const { pool } = this.options.pools.get(endpoint) as LeasedPool
    const leased = this.applied.get(endpoint) as Map<string, StoredLease>
    return { state: pool.state, members: pool.describe().map((m) => ({ ...m, lease: leased.has(m.id) })) }
  }

  close (): void {
    clearInterval(this.timer)
  }

  /** Ends lease `id` (once for the cluster), moving its keys to the heirs this node names; false when another caller did (or, `expired`, it was renewed). */
  private async drop (endpoint: string, id: string, expired: boolean): Promise<boolean> {
    const { pool } = this.options.pools.get(endpoint) as LeasedPool
    const heirs = (keys: string[]): Array<[string, string]> => keys.flatMap((key) => {
      const heir = pool.heirOf(id, key)
      return heir === undefined || heir === id ? [] : [[key, heir] as [string, string]]
    })
    const { dropped, left } = await this.store.drop(endpoint, id, expired, heirs(await this.store.keysOn(endpoint, id)))
    if (!dropped) return false
    // keys assigned to it meanwhile
    if (left.length > 0) await this.store.move(endpoint, id, heirs(left))
    await this.apply(endpoint).catch((err: Error) => this.failed('pool_members', err))
    this.options.cluster.notifyPools(endpoint, id, 'members')
    return true
  }

  /** Brings this node's pool to the stored run-time members: new ones join, weights follow, ended ones leave. */
  private async apply (endpoint: string): Promise<void> {
    const { pools, log } = this.options
    const { pool, configured } = pools.get(endpoint) as LeasedPool
    const applied = this.applied.get(endpoint) as Map<string, StoredLease>
    const stored = new Map<string, StoredLease>()
    for (const lease of await this.store.leases(endpoint)) {
      // the store is not trusted: what a registration would refuse is not dialled
      if (memberUrlProblem(lease.url) !== undefined || configured.some((m) => m.id === lease.id || sameUrl(m.url, lease.url))) continue
      stored.set(lease.id, lease)
    }
    for (const [id, lease] of stored) {
      const had = applied.get(id)
      if (had !== undefined && !sameUrl(had.url, lease.url)) {
        // another process under the same id (DELETE and PUT between two looks): the old one leaves first
        pool.leave(id)
        applied.delete(id)
      }
      if (had?.weight !== lease.weight || !applied.has(id)) pool.join(lease)
      applied.set(id, lease)
    }
    for (const id of applied.keys()) {
      if (stored.has(id)) continue
      applied.delete(id)
      pool.leave(id)
      log.info({ endpoint, member: id }, 'pool member left (its lease ended through another node, or ran out)')
    }
  }

  /** The periodic look: leases past their time end (once, cluster-wide), and the stored set is applied. */
  private async tick (): Promise<void> {
    if (this.ticking || this.options.cluster.state !== 'up') return
    this.ticking = true
    try {
      for (const endpoint of this.options.pools.keys()) {
        for (const id of await this.store.expired(endpoint)) {
          // a lease under the id of a member from the config (moved there from run time, or written by another) is not that member: it is never applied (apply), and its end moves nothing
          if (this.configured(endpoint, id)) continue
          if (await this.drop(endpoint, id, true)) this.options.log.warn({ endpoint, member: id, leaseMs: this.leaseMs }, 'pool member lease expired (not renewed): it leaves the pool')
        }
        await this.apply(endpoint)
      }
    } catch (err) {
      this.failed('pool_members', err as Error)
    } finally {
      this.ticking = false
    }
  }

  private async reach<T> (run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (err) {
      this.failed('pool_members', err as Error)
      throw new GW_ERR_POOL_STORE_UNAVAILABLE((err as Error).message)
    }
  }
}
