/**
 * A node alone (no `cluster.redis`): every client is connected here, so a claim
 * is always free and an action for a user not connected here has nowhere to go.
 */
import { EventEmitter } from 'node:events'
import type { ClientAction } from '../../protocol/index.js'
import type { GatewayMetrics } from '../metrics.js'
import type { Broker, BrokerEvents, Claim } from './broker.js'
import { targetCount } from './targets.js'

export class MemoryBroker extends EventEmitter<BrokerEvents> implements Broker {
  readonly state = 'up'

  constructor (private readonly metrics: GatewayMetrics) {
    super()
    // nothing to reach: a node alone is always up (docs/scaling.md)
    metrics.brokerUp.set(1)
  }

  async start (): Promise<void> {}

  async claim (): Promise<Claim> {
    return { outcome: 'free' }
  }

  register (): void {}

  release (): void {}

  /** `everywhere` forwards name users delivered here too: with no other node, they were never for elsewhere. */
  forward (endpoint: string, actions: ClientAction[], everywhere = false): void {
    if (everywhere) return
    const missed = actions.reduce((sum, action) => sum + targetCount(action), 0)
    if (missed > 0) this.metrics.droppedActions.inc({ endpoint, reason: 'not_connected' }, missed)
  }

  async close (): Promise<void> {}
}
