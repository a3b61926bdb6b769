/** The cluster over Redis (docs/scaling.md): the cluster's logic on the Redis transport. */
import type { FastifyBaseLogger } from 'fastify'
import type { GatewayMetrics } from '../metrics.js'
import { ClusterBroker } from './cluster-broker.js'
import { RedisTransport } from './redis-transport.js'

export interface RedisBrokerOptions {
  url: string
  /** `cluster.name`: the key prefix. */
  name: string
  nodeId: string
  presenceTtlMs: number
  handoffTimeoutMs: number
  metrics: GatewayMetrics
  log: FastifyBaseLogger
}

export class RedisBroker extends ClusterBroker {
  constructor (options: RedisBrokerOptions) {
    super(new RedisTransport(options), options)
  }
}
