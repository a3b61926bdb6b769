/** Operator routes (docs/operations.md): liveness, readiness, Prometheus metrics. */
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'

export interface HealthRoutesOptions {
  /** State of each backend link, by endpoint name. */
  links (): Record<string, string>
  /** The cluster broker: `down` while Redis is unreachable (the node still serves: degraded). */
  broker (): 'up' | 'down'
  registry: Registry
}

export async function healthRoutes (app: FastifyInstance, { links, broker, registry }: HealthRoutesOptions): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/readyz', async (_request, reply) => {
    const states = links()
    const ready = Object.values(states).every((state) => state === 'up')
    const cluster = broker()
    // without Redis a node still serves its own clients: ready, but degraded, so a load balancer keeps it
    const status = !ready ? 'not ready' : cluster === 'up' ? 'ready' : 'degraded'
    return reply.code(ready ? 200 : 503).send({ status, links: states, broker: cluster })
  })

  app.get('/metrics', async (_request, reply) => {
    return reply.type(registry.contentType).send(await registry.metrics())
  })
}
