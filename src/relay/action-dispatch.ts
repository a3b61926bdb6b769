/**
 * The action side of one endpoint's relay: the backend's `send` and `close`
 * actions become frames and closes on the sessions connected here, in the order
 * the backend sent them; what names users connected elsewhere goes on to the
 * cluster (PROTOCOL.md §4).
 */
import type { FastifyBaseLogger } from 'fastify'
import { CloseCodes, portableAction, sendPayload, type ClientAction, type CloseAction, type SendAction } from '../../protocol/index.js'
import type { GatewayMetrics } from '../metrics.js'
import { forUsers, targetsOf } from '../cluster/targets.js'
import type { SessionRegistry } from '../sessions/registry.js'

/** The rest of the cluster, as action dispatch needs it. */
export interface ForwardPort {
  /** Actions for users not connected here (and `all`), for the nodes they are connected to. */
  forward (endpoint: string, actions: ClientAction[]): void
}

export interface ActionDispatchOptions {
  endpoint: string
  /** Only looked up: sessions come and go on the client side. */
  registry: Pick<SessionRegistry, 'get' | 'values'>
  cluster: ForwardPort
  metrics: GatewayMetrics
  log: FastifyBaseLogger
}

export class ActionDispatch {
  private readonly labels: { endpoint: string }
  /** Per-message count, published to prom-client once per batch (its inc() hashes the labels on every call). */
  private messagesOut = 0

  constructor (private readonly options: ActionDispatchOptions) {
    this.labels = { endpoint: options.endpoint }
  }

  /**
   * Actions from the backend, in the order it sent them. Users not connected
   * here, and `all`, go on to the rest of the cluster; actions another node
   * `forwarded` are for this node's clients only.
   */
  dispatch (actions: readonly ClientAction[], forwarded = false): void {
    const { metrics, cluster, endpoint, log } = this.options
    const onward: ClientAction[] = []
    for (const action of actions) {
      const missing = this.perform(action, forwarded)
      if (missing === undefined) continue
      if (missing.length > 0) {
        log.debug({ users: missing.length, action: action.action, forwarded }, 'action for users not connected here')
        if (forwarded) metrics.droppedActions.inc({ ...this.labels, reason: 'not_connected' }, missing.length)
        else onward.push(portableAction(forUsers(action, missing)))
      } else if (!forwarded && 'all' in action) {
        onward.push(portableAction(action))
      }
    }
    if (onward.length > 0) cluster.forward(endpoint, onward)
    if (this.messagesOut > 0) {
      metrics.messagesOut.inc(this.labels, this.messagesOut)
      this.messagesOut = 0
    }
  }

  /**
   * Runs one action; returns the users not connected here, or undefined when it
   * failed. One bad action must not take the gateway down: `data` nested
   * deeper than JSON.stringify can recurse throws RangeError, and the
   * link's (or the cluster's) message handler is no place for a throw.
   */
  private perform (action: ClientAction, forwarded: boolean): string[] | undefined {
    try {
      return action.action === 'send' ? this.send(action) : this.close(action)
    } catch (err) {
      this.options.metrics.backendFrameErrors.inc({ ...this.labels, reason: 'invalid_message' })
      this.options.log.warn({ action: action.action, forwarded, err: (err as Error).message }, 'backend action could not be carried out; skipped')
      return undefined
    }
  }

  /** Delivers to the users connected here; returns the ones that are not. */
  private send (action: SendAction): string[] {
    const { registry, metrics, log } = this.options
    const users = 'all' in action ? [...registry.values()].map((s) => s.user) : targetsOf(action)
    const payload = sendPayload(action.data, action.binary)
    // encode once, write many: ws would otherwise re-encode a string per socket
    const frame = users.length > 1 && typeof payload === 'string' ? Buffer.from(payload) : payload
    const binary = action.binary === true
    const missing: string[] = []
    for (const user of users) {
      const session = registry.get(user)
      if (!session) {
        missing.push(user)
        continue
      }
      const outcome = session.deliver(frame, binary)
      if (outcome === 'sent') {
        this.messagesOut++
      } else if (outcome === 'slow') {
        metrics.droppedActions.inc({ ...this.labels, reason: 'slow_consumer' })
        log.info({ user }, 'client too slow to read; closed (1013)')
      } else if (outcome === 'gone') {
        metrics.droppedActions.inc({ ...this.labels, reason: 'resume_expired' })
      }
    }
    return missing
  }

  /** Closes the users connected here; returns the ones that are not. */
  private close (action: CloseAction): string[] {
    const missing: string[] = []
    for (const user of targetsOf(action)) {
      const session = this.options.registry.get(user)
      if (session) session.close({ code: action.code ?? CloseCodes.NORMAL.code, reason: action.reason ?? '' })
      else missing.push(user)
    }
    return missing
  }
}
