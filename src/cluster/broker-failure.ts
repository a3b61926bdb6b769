/** How a failed broker (Redis) operation is reported, wherever it runs: counted by operation, logged without its data. */
import type { FastifyBaseLogger } from 'fastify'
import type { GatewayMetrics } from '../metrics.js'

export type BrokerFailure = (op: string, err: Error) => void

export function brokerFailure ({ metrics, log }: { metrics: GatewayMetrics, log: FastifyBaseLogger }): BrokerFailure {
  return (op, err) => {
    metrics.brokerErrors.inc({ op })
    log.warn({ op, err: err.message }, 'redis operation failed')
  }
}
