/**
 * `app.listen()` on the configured address: fastify's own defaults are
 * localhost and a random port, which would silently ignore `server.host` and
 * `server.port` for an embedder. Options given to `listen` still win.
 */
import type { FastifyInstance, FastifyListenOptions } from 'fastify'
import type { GatewayConfig } from './config/schema.js'

type ListenCallback = (err: Error | null, address: string) => void

export function listenOnConfiguredAddress (app: FastifyInstance, { host, port }: Readonly<GatewayConfig['server']>): void {
  const listen = app.listen.bind(app) as (options: FastifyListenOptions, callback?: ListenCallback) => Promise<string> | undefined
  app.listen = ((options?: FastifyListenOptions | ListenCallback, callback?: ListenCallback) => {
    if (typeof options === 'function') return listen({ host, port }, options)
    return listen({ host, port, ...options }, callback)
  }) as FastifyInstance['listen']
}
