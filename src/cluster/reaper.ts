/**
 * Reaping dead nodes (docs/scaling.md): a node whose lease has expired is
 * taken out of the set by the first survivor to get there, which reports
 * the dead node's users closed (1006) on its own backend links, then gives
 * their presence up.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { GatewayMetrics } from '../metrics.js'
import type { LocalNode } from './broker.js'
import { parseField } from './connection-id.js'
import type { PresenceStore } from './transport.js'

export interface ReaperOptions {
  presence: PresenceStore
  node: LocalNode
  /** Gives up the reaper's tombstone (connection `id`) of a reported user's field. */
  release: (field: string, id: string) => void
  metrics: GatewayMetrics
  log: FastifyBaseLogger
}

export class Reaper {
  /** Closes this node is reporting for reaped users, by field: a hand-off for them waits for the report. */
  private readonly reporting = new Map<string, Promise<void>>()

  constructor (private readonly options: ReaperOptions) {}

  /** The report of a reaped user of `field` still under way here, if any. */
  report (field: string): Promise<void> | undefined {
    return this.reporting.get(field)
  }

  /** Nodes whose lease has expired: the first survivor to remove one from the set reaps it. Resolves with the other nodes alive. */
  async sweep (): Promise<Set<string>> {
    const { presence } = this.options
    const others = await presence.otherNodes()
    const alive = await Promise.all(others.map(async (n) => await presence.isAlive(n)))
    for (const [i, dead] of others.entries()) {
      if (!alive[i] && await presence.removeNode(dead)) await this.reap(dead)
    }
    return new Set(others.filter((_, i) => alive[i]))
  }

  private async reap (dead: string): Promise<void> {
    const { presence, node, release, log, metrics } = this.options
    const taken = await presence.reap(dead)
    log.warn({ node: dead, users: taken.length }, 'gateway node lost (its lease expired); reporting its users closed (1006)')
    for (const [field, entry] of taken) {
      const { endpoint, user, conn } = parseField(field, entry.c)
      metrics.clusterLostUsers.inc({ endpoint })
      const report = node.reportLost(endpoint, user, entry.p, conn).finally(() => {
        this.reporting.delete(field)
        release(field, `reap:${entry.c}`)
      })
      this.reporting.set(field, report)
    }
  }
}
