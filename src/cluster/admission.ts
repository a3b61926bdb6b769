/**
 * A handshake's registration with the cluster, before the upgrade: it gets a
 * connection id, and the broker's claim decides what its status would be
 * (409 under `reject`, 503 when uniqueness cannot be checked and
 * `cluster.whenRedisDown` is `reject`).
 */
import type { Params } from '../../protocol/index.js'
import type { Identity } from '../auth/authenticator.js'
import type { ClusterConfig, EndpointConfig } from '../config/schema.js'
import { GW_ERR_CLUSTER_UNAVAILABLE, GW_ERR_DUPLICATE } from '../errors.js'
import type { Ticket } from '../relay/relay.js'
import type { Broker } from './broker.js'

export class Admissions {
  private issued = 0

  constructor (
    private readonly broker: Broker,
    private readonly nodeId: string,
    private readonly whenRedisDown: ClusterConfig['whenRedisDown']
  ) {}

  /** Throws the error whose status the client gets. */
  async claim (endpoint: Readonly<EndpointConfig>, identity: Identity, params: Params): Promise<Ticket> {
    const connection = {
      endpoint: endpoint.name,
      user: identity.user,
      id: `${this.nodeId}#${++this.issued}`,
      params,
      since: Date.now(),
      policy: endpoint.duplicate
    }
    const claim = await this.broker.claim(connection)
    if (claim.outcome === 'refused') throw new GW_ERR_DUPLICATE()
    if (claim.outcome === 'unchecked') {
      if (this.whenRedisDown === 'reject') throw new GW_ERR_CLUSTER_UNAVAILABLE()
      return { connection, unchecked: true }
    }
    return 'lost' in claim && claim.lost ? { connection, lost: claim.lost } : { connection }
  }

  release (ticket: Ticket): void {
    this.broker.release(ticket.connection)
  }
}
