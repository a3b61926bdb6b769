/**
 * `gatehouse-client`: a browser's connection to a Gatehouse endpoint (docs/client.md).
 *
 * ```ts
 * import { GatehouseClient } from 'gatehouse-client'
 * const client = new GatehouseClient('wss://play.example.com/lobby', { token: () => fetchToken() })
 * client.on('message', ({ data }) => console.log(data))
 * client.sendJson({ type: 'hello' })
 * ```
 */
export {
  GatehouseClient,
  type GatehouseClientOptions, type ClientEvents, type ClientState, type ClosedEvent
} from './client.js'
export { retryAfterClose, backoffMs, DUPLICATE_REJECTED_REASON, TOO_MANY_FRAGMENTS_REASON, type RetryKind } from './close-policy.js'
