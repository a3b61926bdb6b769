/**
 * Actions for users connected to other nodes (docs/scaling.md): batched, looked
 * up in presence, and published in order, one channel per node (and `all`),
 * so per-user order holds.
 *
 * Pub/sub is at most once: a message the bus took but never passed on (it
 * died, or the receiver was not subscribed) is gone. So each sender stamps
 * its messages with the running count of deliveries it has published on that
 * channel, and a receiver that sees the count jump counts the gap as dropped.
 */
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { ClientAction } from '../../protocol/index.js'
import type { GatewayMetrics } from '../metrics.js'
import { ALL, nodeChannel, type ActionsMessage, type Post } from './messages.js'
import { forUsers, targetCount, targetsOf } from './targets.js'
import type { PresenceStore } from './transport.js'

export interface ForwarderOptions {
  nodeId: string
  presenceTtlMs: number
  presence: PresenceStore
  post: Post
  /** Is the cluster joined now? */
  isUp: () => boolean
  /** When it was last joined (ms). */
  upSince: () => number
  metrics: GatewayMetrics
  log: FastifyBaseLogger
}

/** `everywhere`: for every other node, no lookup (users of `duplicate: "allow"` endpoints, PROTOCOL.md §6a). */
interface Forward { endpoint: string, actions: ClientAction[], everywhere?: boolean }

export class Forwarder {
  private pending: Forward[] = []
  private pumping = false
  /** Forwards dropped during this outage were logged once; the metric counts each. */
  private lossLogged = false
  /** Deliveries published per channel, and the last count seen per sender and channel (gap detection). */
  private readonly published = new Map<string, number>()
  private readonly heard = new Map<string, { ep: string, n: number }>()
  private readonly epoch = randomBytes(6).toString('hex')

  constructor (private readonly options: ForwarderOptions) {}

  forward (endpoint: string, actions: ClientAction[], everywhere = false): void {
    this.pending.push({ endpoint, actions, everywhere })
    if (!this.pumping) void this.pump()
  }

  /** The cluster is joined again: a new outage's losses get logged again. */
  joined (): void {
    this.lossLogged = false
  }

  /**
   * Forgets the counts of nodes no longer in the cluster, so that nodes
   * coming and going (each restart is a new id) do not grow them for ever.
   * A forgotten node that comes back is heard as a new sender.
   */
  keepOnly (nodes: ReadonlySet<string>): void {
    for (const key of this.heard.keys()) {
      if (!nodes.has(key.slice(0, key.indexOf('\n')))) this.heard.delete(key)
    }
    for (const channel of this.published.keys()) {
      if (channel !== ALL && !nodes.has(channel.slice(nodeChannel('').length))) this.published.delete(channel)
    }
  }

  /** Counts deliveries the sender published on `channel` that never arrived here. */
  received (channel: string, message: ActionsMessage): void {
    const { metrics, log } = this.options
    const key = `${message.from}\n${channel}`
    const last = this.heard.get(key)
    this.heard.set(key, { ep: message.ep, n: message.n })
    metrics.clusterForwards.inc({ endpoint: message.e, direction: 'in' }, message.a.length)
    if (last?.ep !== message.ep) return // a sender we had not heard from, or restarted
    const missed = message.n - weight(message.a) - last.n
    if (missed <= 0) return
    metrics.droppedActions.inc({ endpoint: message.e, reason: 'broker_unavailable' }, missed)
    log.warn({ from: message.from, missed }, 'forwarded actions lost in redis (pub/sub is at most once)')
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
    const { metrics, log, nodeId, presence } = this.options
    const dropped = (endpoint: string, reason: string, count: number): void => {
      if (count > 0) metrics.droppedActions.inc({ endpoint, reason }, count)
    }
    const fields = [...new Set(batch.flatMap(({ endpoint, actions, everywhere }) => everywhere ? [] : actions.flatMap((a) => targetsOf(a).map((u) => `${endpoint}:${u}`))))]
    let owners = new Map<string, string>()
    try {
      if (!this.options.isUp()) throw new Error('redis is unreachable')
      const found = await presence.lookup(fields)
      owners = new Map(fields.flatMap((f, i) => {
        const at = found[i]
        return at && at.n !== nodeId && !at.c.startsWith('reap:') ? [[f, at.n]] : []
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
      for (const { node, endpoint, actions } of outbox.values()) this.sendActions(nodeChannel(node), endpoint, actions, true)
      outbox = new Map()
    }
    for (const { endpoint, actions, everywhere } of batch) {
      for (const action of actions) {
        if ('all' in action || everywhere === true) {
          flush()
          this.sendActions(ALL, endpoint, [action], false)
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
        dropped(endpoint, Date.now() - this.options.upSince() < this.options.presenceTtlMs ? 'broker_unavailable' : 'not_connected', nowhere)
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
    this.options.post(channel, { t: 'actions', e: endpoint, a: actions, from: nodeId, n, ep: this.epoch }, 'forward', (receivers) => {
      if (receivers === undefined || (toNode && receivers === 0)) {
        log.warn({ endpoint, actions: actions.length, channel, why: receivers === undefined ? 'publish failed' : 'no node is subscribed' }, 'forwarded actions may be lost; their receiver counts them when it next hears from this node')
      }
    })
  }
}

/** Deliveries a list of actions stands for: its named users, and 1 for each `all`. */
function weight (actions: readonly ClientAction[]): number {
  return actions.reduce((n, a) => n + Math.max(1, targetCount(a)), 0)
}
