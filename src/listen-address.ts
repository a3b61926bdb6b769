/**
 * `app.listen()` on the configured address and accept queue: fastify's own
 * defaults are localhost, a random port and Node's backlog of 511, which
 * would silently ignore `server.host`, `server.port` and `server.backlog` for
 * an embedder. Options given to `listen` still win.
 */
import type { FastifyInstance, FastifyListenOptions } from 'fastify'
import type { GatewayConfig } from './config/schema.js'

type ListenCallback = (err: Error | null, address: string) => void

export function listenOnConfiguredAddress (app: FastifyInstance, { host, port, backlog }: Readonly<GatewayConfig['server']>): void {
  const listen = app.listen.bind(app) as (options: FastifyListenOptions, callback?: ListenCallback) => Promise<string> | undefined
  app.listen = ((options?: FastifyListenOptions | ListenCallback, callback?: ListenCallback) => {
    if (typeof options === 'function') return listen({ host, port, backlog }, options)
    return listen({ host, port, backlog, ...options }, callback)
  }) as FastifyInstance['listen']
}
