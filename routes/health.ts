/** Operator routes (DESIGN.md §5): liveness, readiness, Prometheus metrics. */
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'

export interface HealthRoutesOptions {
  /** State of each backend link, by endpoint name. */
  links (): Record<string, string>
  registry: Registry
}

export async function healthRoutes (app: FastifyInstance, { links, registry }: HealthRoutesOptions): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/readyz', async (_request, reply) => {
    const states = links()
    const ready = Object.values(states).every((state) => state === 'up')
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', links: states })
  })

  app.get('/metrics', async (_request, reply) => {
    return reply.type(registry.contentType).send(await registry.metrics())
  })
}
