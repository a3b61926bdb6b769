/** The cluster over Redis (docs/scaling.md): the cluster's logic on the Redis transport. */
import { ClusterBroker, type ClusterBrokerOptions } from './cluster-broker.js'
import { RedisTransport } from './redis-transport.js'

/** `name` is also the Redis key prefix. */
export type RedisBrokerOptions = ClusterBrokerOptions & { url: string }

export class RedisBroker extends ClusterBroker {
  constructor (options: RedisBrokerOptions) {
    super(new RedisTransport(options), options)
  }
}
