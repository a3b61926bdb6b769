/**
 * A pool's directory in a cluster (docs/pools.md, "Clusters"): assignments
 * and failover decisions in the cluster's store (PoolStore), so every node
 * routes a key to the same member and a failover is decided once.
 *
 * - A key is held by the nodes with clients of it; the store lingers it
 *   `lingerMs` once none does, so this node keeps no linger of its own.
 * - Each node records its view of each member; a node whose `failoverMs`
 *   ran out asks the store, which marks the member out once a strict
 *   majority of live nodes see it down that long. The one caller that marks
 *   it moves its keys (by HRW, as it sees the others) and tells every node,
 *   which then re-homes its own clients to the keys' new members.
 * - The bus is at most once: every `periodMs` each node sweeps lingers,
 *   retries its pending decisions and re-reads which members are out.
 * - Without the store: a new key goes to this node's own choice, nothing is
 *   decided, and the views are written again once it is back.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { GatewayMetrics } from '../metrics.js'
import type { BrokerState } from '../cluster/broker.js'
import type { PoolChange } from '../cluster/messages.js'
import type { PoolStore } from '../cluster/transport.js'
import type { HeirOf, PoolDirectory } from './directory.js'
import { brokerFailure, type BrokerFailure } from '../cluster/broker-failure.js'

/** What the directory needs of the cluster (ClusterBroker). */
export interface PoolCluster {
  readonly state: BrokerState
  readonly pools: PoolStore
  notifyPools (endpoint: string, member: string, what: PoolChange): void
  onPoolNotice (listener: (endpoint: string, member: string, what: PoolChange) => void): void
}

export interface ClusterDirectoryOptions {
  endpoint: string
  cluster: PoolCluster
  lingerMs: number
  failoverMs: number
  /** How often this node sweeps, retries and re-reads. */
  periodMs: number
  metrics: GatewayMetrics
  log: FastifyBaseLogger
}

export class ClusterDirectory implements PoolDirectory {
  private readonly failed: BrokerFailure
  readonly shared = true
  readonly localLingerMs = 0
  /** Members down here past failoverMs, waiting for (or past) the cluster's decision, with how this node would name heirs. */
  private readonly deciding = new Map<string, HeirOf>()
  /** Members whose view this node could not write: written again on the next look. */
  private readonly unsent = new Map<string, boolean>()
  private readonly listeners: Array<(member: string) => void> = []
  private readonly timer: NodeJS.Timeout
  private ticking = false

  constructor (private readonly options: ClusterDirectoryOptions) {
    this.failed = brokerFailure(options)
    options.cluster.onPoolNotice((endpoint, member, what) => {
      if (endpoint === options.endpoint && what === 'out') this.out(member)
    })
    this.timer = setInterval(() => { void this.tick() }, options.periodMs)
    this.timer.unref()
  }

  private get store (): PoolStore {
    return this.options.cluster.pools
  }

  async hold (key: string, proposed: string): Promise<string> {
    try {
      return await this.store.hold(this.options.endpoint, key, proposed)
    } catch (err) {
      // cut off from the store: this node's own choice, the cluster's as long as the nodes see the same members (docs/pools.md)
      this.failed('pool_hold', err as Error)
      return proposed
    }
  }

  released (key: string): void {
    this.store.release(this.options.endpoint, key, this.options.lingerMs).catch((err: Error) => this.failed('pool_release', err))
  }

  seen (member: string, up: boolean): void {
    if (up) this.deciding.delete(member)
    this.unsent.delete(member)
    this.store.see(this.options.endpoint, member, !up).catch((err: Error) => {
      this.unsent.set(member, up)
      this.failed('pool_view', err)
    })
  }

  down (member: string, heirOf: HeirOf): boolean {
    this.deciding.set(member, heirOf)
    this.decide(member).catch((err: Error) => this.failed('pool_decide', err))
    return false
  }

  async assigned (keys: string[]): Promise<Array<string | undefined>> {
    return await this.store.assigned(this.options.endpoint, keys)
  }

  onOut (listener: (member: string) => void): void {
    this.listeners.push(listener)
  }

  /**
   * A member that left (a lease deleted or run out): no decision pending for
   * it, and this node's view of it gone from the store, which also ends its
   * being out there; else each departed id stays in the store and in every
   * periodic look for ever.
   */
  forget (member: string): void {
    // as for a member seen up: no decision pending, the view is cleared (retried on each look while the store is away)
    this.seen(member, true)
  }

  close (): void {
    clearInterval(this.timer)
    this.deciding.clear()
  }

  private async decide (member: string): Promise<void> {
    const { endpoint, failoverMs, metrics, log, cluster } = this.options
    const heirOf = this.deciding.get(member)
    if (heirOf === undefined) return
    const decision = await this.store.decide(endpoint, member, failoverMs)
    if (decision.outcome === 'wait') return
    if (decision.outcome === 'won') {
      const moved = await this.move(member, decision.keys, heirOf)
      metrics.poolFailovers.inc({ endpoint, member })
      log.warn({ member, keys: decision.keys.length, moved, failoverMs }, 'pool member out: a majority of gateway nodes saw it down past failoverMs; its keys moved to the other members')
      cluster.notifyPools(endpoint, member, 'out')
    }
    this.out(member)
  }

  /** Moves the keys still on `dead` to the heirs this node names; keys no member can take stay (moved on a later look). */
  private async move (dead: string, keys: string[], heirOf: HeirOf): Promise<number> {
    const moves: Array<[string, string]> = []
    for (const key of keys) {
      const heir = heirOf(key)
      if (heir !== undefined && heir !== dead) moves.push([key, heir])
    }
    return await this.store.move(this.options.endpoint, dead, moves)
  }

  private out (member: string): void {
    for (const listener of this.listeners) listener(member)
  }

  /** The periodic look: views not written, lingers, pending decisions, and members out (whose keys this node may still hold). */
  private async tick (): Promise<void> {
    const { endpoint, cluster, lingerMs } = this.options
    if (this.ticking || cluster.state !== 'up') return
    this.ticking = true
    try {
      for (const [member, up] of this.unsent) this.seen(member, up)
      await this.store.sweep(endpoint, lingerMs)
      const outs = new Set(await this.store.outs(endpoint))
      for (const [member, heirOf] of this.deciding) {
        if (!outs.has(member)) {
          // written again: a view is dropped while its node is out of the node set (reaped while cut off)
          this.seen(member, false)
          await this.decide(member)
          continue
        }
        // out, but keys left on it when nobody could take them (or by a node that died deciding): move them now
        const moved = await this.move(member, await this.store.keysOn(endpoint, member), heirOf)
        if (moved > 0) cluster.notifyPools(endpoint, member, 'out')
      }
      for (const member of outs) this.out(member)
    } catch (err) {
      this.failed('pool_sweep', err as Error)
    } finally {
      this.ticking = false
    }
  }
}
