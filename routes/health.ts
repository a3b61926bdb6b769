/** Operator routes (docs/operations.md): liveness, readiness, Prometheus metrics. */
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'

export interface HealthRoutesOptions {
  /** State of each backend link, by endpoint name. */
  links (): Record<string, string>
  /** State of each pool member (up, down, draining, out), by endpoint name and member id; endpoints with `backend.urls` only. */
  members (): Record<string, Record<string, string>>
  /** The cluster broker: `down` while Redis is unreachable (the node still serves: degraded). */
  broker (): 'up' | 'down'
  registry: Registry
}

export async function healthRoutes (app: FastifyInstance, { links, members, broker, registry }: HealthRoutesOptions): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/readyz', async (_request, reply) => {
    const states = links()
    // an endpoint's state is `up` while at least one member of its pool is
    const ready = Object.values(states).every((state) => state === 'up')
    const cluster = broker()
    // without Redis a node still serves its own clients: ready, but degraded, so a load balancer keeps it
    const status = !ready ? 'not ready' : cluster === 'up' ? 'ready' : 'degraded'
    return reply.code(ready ? 200 : 503).send({ status, links: states, ...pools(members()), broker: cluster })
  })

  app.get('/metrics', async (_request, reply) => {
    return reply.type(registry.contentType).send(await registry.metrics())
  })
}

/** `members` only where some endpoint has a pool (`backend.urls`): a gateway without one answers as before. */
function pools (members: Record<string, Record<string, string>>): { members?: Record<string, Record<string, string>> } {
  return Object.keys(members).length > 0 ? { members } : {}
}
