/**
 * Gatehouse's error catalog (the handshake table in protocol/PROTOCOL.md §6). Start-up misuse throws these;
 * handshake refusals reply with them (fastify sends `statusCode`, `code`,
 * `message`). Nothing on the per-message path throws.
 */
// the named export, so the emitted .d.ts names `FastifyErrorConstructor` directly: through the default
// import it would read `createError.FastifyErrorConstructor`, which `moduleResolution: "bundler"` cannot resolve
import { createError, type FastifyErrorConstructor } from '@fastify/error'

/** Each handshake refusal's label in `gatehouse_handshake_failures_total` (docs/operations.md), by its class. */
const REASONS = new Map<unknown, string>()

/** A refused player handshake: its metric label, status and message, declared together, once. */
function refusal<C extends string, SC extends number> (reason: string, code: C, message: string, statusCode: SC): FastifyErrorConstructor<{ code: C, statusCode: SC }> {
  const Refusal = createError(code, message, statusCode)
  REASONS.set(Refusal, reason)
  return Refusal
}

/** The label a refused handshake is counted under; undefined for any other error. */
export function refusalReason (error: Error): string | undefined {
  return REASONS.get(error.constructor)
}

export const GW_ERR_CONFIG = createError('GW_ERR_CONFIG', 'invalid configuration:\n  %s', 500)

export const GW_ERR_UPGRADE_REFUSED = createError('GW_ERR_UPGRADE_REFUSED', 'this path does not accept WebSocket upgrades', 400)
export const GW_ERR_BAD_URL = createError('GW_ERR_BAD_URL', 'malformed URL (bad percent-encoding)', 400)
export const GW_ERR_PARAM_TOO_LONG = createError('GW_ERR_PARAM_TOO_LONG', 'a path parameter is longer than the gateway accepts', 414)
export const GW_ERR_NOT_FOUND = createError('GW_ERR_NOT_FOUND', 'no endpoint at %s', 404)

export const GW_ERR_UPGRADE_REQUIRED = refusal('not_websocket', 'GW_ERR_UPGRADE_REQUIRED', 'this is a WebSocket endpoint: connect with a WebSocket client', 426)
export const GW_ERR_TOKEN_MISSING = refusal('token_missing', 'GW_ERR_TOKEN_MISSING', 'no token: send it as Authorization: Bearer, Sec-WebSocket-Protocol: bearer, <jwt> or ?access_token= (as configured)', 401)
export const GW_ERR_TOKEN_EXPIRED = refusal('token_expired', 'GW_ERR_TOKEN_EXPIRED', 'token expired', 401)
export const GW_ERR_TOKEN_INVALID = refusal('token_invalid', 'GW_ERR_TOKEN_INVALID', 'token rejected: %s', 401)
export const GW_ERR_NO_ROUTING_KEY = refusal('no_routing_key', 'GW_ERR_NO_ROUTING_KEY', 'no routing key: this endpoint routes clients by %s, which is missing or empty for this connection', 400)
export const GW_ERR_KEYS_UNAVAILABLE = refusal('keys_unavailable', 'GW_ERR_KEYS_UNAVAILABLE', 'cannot fetch the key that signed this token now, try again later', 503)
export const GW_ERR_ORIGIN_FORBIDDEN = refusal('origin', 'GW_ERR_ORIGIN_FORBIDDEN', 'origin not allowed', 403)
export const GW_ERR_DUPLICATE = refusal('duplicate', 'GW_ERR_DUPLICATE', 'this user is already connected to this endpoint', 409)
export const GW_ERR_AT_CAPACITY = refusal('capacity', 'GW_ERR_AT_CAPACITY', 'gateway at capacity, try again later', 503)
export const GW_ERR_DRAINING = refusal('draining', 'GW_ERR_DRAINING', 'gateway shutting down, try again later', 503)
export const GW_ERR_CLUSTER_UNAVAILABLE = refusal('cluster_unavailable', 'GW_ERR_CLUSTER_UNAVAILABLE', 'cannot check that this connection is unique while the cluster store is unreachable, try again later', 503)
export const GW_ERR_BACKEND_UNAVAILABLE = refusal('backend_unavailable', 'GW_ERR_BACKEND_UNAVAILABLE', 'backend unavailable, try again later', 503)

/** The admin routes (docs/pools.md, "Joining at run time"). */
export const GW_ERR_ADMIN_UNAUTHORIZED = createError('GW_ERR_ADMIN_UNAUTHORIZED', 'missing or wrong admin token: send Authorization: Bearer <admin.token>', 401)
export const GW_ERR_NO_POOL = createError('GW_ERR_NO_POOL', 'no pool endpoint named "%s" (an endpoint with backend.urls)', 404)
export const GW_ERR_NO_MEMBER = createError('GW_ERR_NO_MEMBER', 'no member "%s" registered at run time on this endpoint', 404)
export const GW_ERR_BAD_REGISTRATION = createError('GW_ERR_BAD_REGISTRATION', 'bad registration: %s', 400)
export const GW_ERR_MEMBER_CONFLICT = createError('GW_ERR_MEMBER_CONFLICT', 'member conflict: %s', 409)
export const GW_ERR_POOL_FULL = createError('GW_ERR_POOL_FULL', 'pool full: %s', 409)
export const GW_ERR_POOL_STORE_UNAVAILABLE = createError('GW_ERR_POOL_STORE_UNAVAILABLE', 'the cluster store (redis) is unreachable, try again later: %s', 503)
