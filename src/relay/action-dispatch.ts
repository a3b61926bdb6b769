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
import type { ClientSession } from '../sessions/client-session.js'
import type { SessionRegistry } from '../sessions/registry.js'

/** The rest of the cluster, as action dispatch needs it. */
export interface ForwardPort {
  /** The cluster's name; absent for a node alone. */
  readonly cluster?: string
  /** Actions for users not connected here (and `all`), for the nodes they are connected to; `everywhere`: for every other node. */
  forward (endpoint: string, actions: ClientAction[], everywhere?: boolean): void
}

export interface ActionDispatchOptions {
  endpoint: string
  /** Only looked up: sessions come and go on the client side. */
  registry: Pick<SessionRegistry, 'connectionsOf' | 'connection' | 'all' | 'policy'>
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
    const { metrics, cluster, endpoint, log, registry } = this.options
    // a user of an `allow` endpoint may have connections here and on other nodes: what names users goes to every node
    const everywhere = registry.policy === 'allow' && cluster.cluster !== undefined
    const onward: ClientAction[] = []
    for (const action of actions) {
      const missing = this.perform(action, forwarded)
      if (missing === undefined) continue
      if (everywhere) {
        // each node delivers to the connections it has, so one without any is no loss to count
        if (!forwarded && !('conn' in action)) onward.push(portableAction(action))
      } else if (missing.length > 0) {
        log.debug({ users: missing.length, action: action.action, forwarded }, 'action for users not connected here')
        if (forwarded) metrics.droppedActions.inc({ ...this.labels, reason: 'not_connected' }, missing.length)
        else onward.push(portableAction(forUsers(action, missing)))
      } else if (!forwarded && 'all' in action) {
        onward.push(portableAction(action))
      }
    }
    if (onward.length > 0) cluster.forward(endpoint, onward, everywhere)
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

  /** Delivers to every connection here of the users named (one connection for `conn`); returns the users not connected here. */
  private send (action: SendAction): string[] {
    const { registry } = this.options
    const payload = sendPayload(action.data, action.binary)
    const binary = action.binary === true
    if ('conn' in action) {
      const session = this.connection(action.conn)
      if (session) this.deliver(session, payload, binary)
      return []
    }
    const missing: string[] = []
    let sessions: readonly ClientSession[]
    if ('all' in action) {
      // an array built in a loop, not push(...registry.values()): spread arguments overflow the stack past ~100,000 connections
      sessions = registry.all()
    } else if ('user' in action) {
      // one user, the common case, with no lists built; several are copied, as a slow one's close takes it out of the user's list
      const own = registry.connectionsOf(action.user)
      if (own.length === 0) missing.push(action.user)
      sessions = own.length > 1 ? [...own] : own
    } else {
      const named: ClientSession[] = []
      for (const user of action.users) {
        const own = registry.connectionsOf(user)
        if (own.length === 0) missing.push(user)
        else named.push(...own)
      }
      sessions = named
    }
    const frame = encodedOnce(payload, sessions.length)
    for (const session of sessions) this.deliver(session, frame, binary)
    return missing
  }

  private deliver (session: ClientSession, frame: string | Buffer, binary: boolean): void {
    const { metrics, log } = this.options
    const outcome = session.deliver(frame, binary)
    if (outcome === 'sent') {
      this.messagesOut++
    } else if (outcome === 'slow') {
      metrics.droppedActions.inc({ ...this.labels, reason: 'slow_consumer' })
      log.info({ user: session.user, conn: session.conn }, 'client too slow to read; closed (1013)')
    } else if (outcome === 'gone') {
      metrics.droppedActions.inc({ ...this.labels, reason: 'resume_expired' })
    }
  }

  /** Closes every connection here of the users named (one connection for `conn`); returns the users not connected here. */
  private close (action: CloseAction): string[] {
    const how = { code: action.code ?? CloseCodes.NORMAL.code, reason: action.reason ?? '' }
    if ('conn' in action) {
      this.connection(action.conn)?.close(how)
      return []
    }
    const missing: string[] = []
    for (const user of targetsOf(action)) {
      const own = this.options.registry.connectionsOf(user)
      if (own.length === 0) missing.push(user)
      // a copy: each close removes its session from the list
      for (const session of [...own]) session.close(how)
    }
    return missing
  }

  /**
   * The session of connection `conn` here. A connection id is never
   * forwarded (only `duplicate: "allow"` endpoints hand them out, on one
   * gateway): one not here is dropped and counted.
   */
  private connection (conn: string): ClientSession | undefined {
    const session = this.options.registry.connection(conn)
    if (!session) this.options.metrics.droppedActions.inc({ ...this.labels, reason: 'not_connected' })
    return session
  }
}

/** Encode once, write many: ws would otherwise encode a string again for every socket. */
function encodedOnce (payload: string | Buffer, sockets: number): string | Buffer {
  return sockets > 1 && typeof payload === 'string' ? Buffer.from(payload) : payload
}
