/**
 * `gatehouse-backend`: build a lobby, game or any other service that a
 * Gatehouse gateway dials into.
 *
 * ```ts
 * import { GatehouseBackend } from 'gatehouse-backend'
 * const backend = new GatehouseBackend({ token: process.env.BACKEND_TOKEN }, {
 *   onOpen: (user) => backend.send(user, { hello: user }),
 *   onMessage: (user, data) => backend.broadcast({ from: user, data }),
 *   onClose: (user, code) => console.log(user, 'left with', code)
 * })
 * await backend.listen({ port: 4001 })
 * ```
 */
export {
  GatehouseBackend,
  type BackendEvents, type BackendHandlers, type BackendOptions,
  type BackendStats, type ConnectionInfo, type EventDelivery, type LinkInfo, type SendOptions
} from './backend.js'
export type { BackendLogger } from './logger.js'
export { InferredCloses } from './roster.js'
export { Registration, type RegisterOptions } from './registration.js'
export type { Claims, Params } from '../../protocol/index.js'
