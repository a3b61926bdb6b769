/**
 * The routing key of a client (`backend.route`, docs/pools.md): its user id,
 * a path parameter, or a claim. A key that is missing, empty, or neither a
 * string nor a finite number cannot be routed: the handshake is refused
 * (protocol/PROTOCOL.md §6, GW_ERR_NO_ROUTING_KEY).
 */
import type { Claims, Params } from '../../protocol/index.js'

export interface Routable {
  user: string
  claims: Claims
  params: Params
}

export type RouteKey = (client: Routable) => string | undefined

/** The key function for a validated `backend.route`. */
export function routeKeyOf (route: string): RouteKey {
  if (route === 'user') return ({ user }) => user
  const dot = route.indexOf('.')
  const source = route.slice(0, dot)
  const rest = route.slice(dot + 1)
  if (source === 'params') return ({ params }) => usable(params[rest])
  const path = rest.split('.')
  return ({ claims }) => usable(path.reduce<unknown>((at, part) => isRecord(at) ? at[part] : undefined, claims))
}

function usable (value: unknown): string | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return typeof value === 'string' && value !== '' ? value : undefined
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
