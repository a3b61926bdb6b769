/**
 * A handshake's registration with the cluster, before the upgrade: it gets a
 * connection id, and the broker's claim decides what its status would be
 * (409 under `reject`, 503 when uniqueness cannot be checked and
 * `cluster.whenRedisDown` is `reject`).
 *
 * Between its claim and its upgrade a handshake is pending here. Another
 * handshake can supersede it meanwhile: a newer claim of this node (under
 * `replace`), or another node's claim that evicts it. A superseded handshake
 * never goes live: the relay closes its socket as it is accepted, and the
 * backend never hears of it (docs/scaling.md).
 */
import type { Params } from '../../protocol/index.js'
import type { Identity } from '../auth/authenticator.js'
import type { ClusterConfig, EndpointConfig } from '../config/schema.js'
import { GW_ERR_CLUSTER_UNAVAILABLE, GW_ERR_DUPLICATE } from '../errors.js'
import type { Connection, Eviction, Ticket } from '../domain.js'
import type { Broker } from './broker.js'
import { claimedNoLater, connectionId } from './connection-id.js'

interface Pending {
  connection: Connection
  evicted?: Eviction
}

export class Admissions {
  private issued = 0
  /** Handshakes claimed and not yet upgraded (nor given back), by "<endpoint>:<user>". */
  private readonly pending = new Map<string, Pending[]>()

  constructor (
    private readonly broker: Broker,
    private readonly nodeId: string,
    private readonly whenRedisDown: ClusterConfig['whenRedisDown']
  ) {}

  /** Throws the error whose status the client gets. */
  async claim (endpoint: Readonly<EndpointConfig>, identity: Identity, params: Params, refresh = false): Promise<Ticket> {
    const connection: Connection = {
      endpoint: endpoint.name,
      user: identity.user,
      id: connectionId(this.nodeId, ++this.issued),
      params,
      since: Date.now(),
      policy: endpoint.duplicate,
      ...(refresh ? { refresh: true as const } : {})
    }
    const field = fieldOf(connection)
    const others = this.pending.get(field) ?? []
    // under reject the first handshake claimed here keeps the user: a second would only race it to the upgrade
    if (endpoint.duplicate === 'reject' && others.some((p) => p.evicted === undefined)) throw new GW_ERR_DUPLICATE()
    const entry: Pending = { connection }
    this.pending.set(field, [...others, entry])
    let claim
    try {
      claim = await this.broker.claim(connection)
      if (claim.outcome === 'refused') throw new GW_ERR_DUPLICATE()
      if (claim.outcome === 'unchecked' && this.whenRedisDown === 'reject') throw new GW_ERR_CLUSTER_UNAVAILABLE()
    } catch (err) {
      this.forget(connection)
      throw err
    }
    // the newest claim holds the user now: handshakes of this node claimed before it lose (under `allow` they all go live)
    for (const other of endpoint.duplicate === 'allow' ? [] : this.pending.get(field) ?? []) {
      if (other !== entry && claimedNoLater(other.connection.id, connection.id)) other.evicted ??= 'replaced'
    }
    const upgrade = (): Eviction | undefined => {
      this.forget(connection)
      return entry.evicted
    }
    if (claim.outcome === 'unchecked') return { connection, unchecked: true, upgrade }
    if ('refreshed' in claim && claim.refreshed === true) return { connection, refreshed: true, upgrade }
    return 'lost' in claim && claim.lost ? { connection, lost: claim.lost, upgrade } : { connection, upgrade }
  }

  /**
   * A handshake that will not be upgraded gives its claim back; `holder`,
   * this node's live connection of the user (which that claim had taken the
   * user over from), holds the user again.
   */
  release (ticket: Ticket, holder?: Connection): void {
    this.forget(ticket.connection)
    this.broker.release(ticket.connection, holder)
  }

  /**
   * Another node evicts connection `id` (claims overwrite each other in
   * order, so every handshake of this node claimed no later goes too):
   * the pending ones among them close as they are upgraded.
   */
  evict (endpoint: string, user: string, id: string, why: Eviction): void {
    for (const pending of this.pending.get(`${endpoint}:${user}`) ?? []) {
      if (claimedNoLater(pending.connection.id, id)) pending.evicted ??= why
    }
  }

  private forget (connection: Connection): void {
    const field = fieldOf(connection)
    const left = (this.pending.get(field) ?? []).filter((p) => p.connection !== connection)
    if (left.length > 0) this.pending.set(field, left)
    else this.pending.delete(field)
  }
}

function fieldOf (connection: Pick<Connection, 'endpoint' | 'user'>): string {
  return `${connection.endpoint}:${connection.user}`
}
