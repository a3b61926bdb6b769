/**
 * Where a client's JWT may come from (protocol/PROTOCOL.md §6). Which sources count is
 * configured; the first configured source that holds a token wins.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { TokenSource } from '../config/schema.js'

/** Browsers cannot set headers on a WebSocket, so they offer `['bearer', jwt]` as subprotocols. */
export const BEARER_SUBPROTOCOL = 'bearer'
export const QUERY_PARAMETER = 'access_token'

export interface TokenCarrier {
  headers: IncomingHttpHeaders
  query: unknown
}

export function extractToken (request: TokenCarrier, sources: readonly TokenSource[]): string | undefined {
  for (const source of sources) {
    const token = readers[source](request)
    if (token) return token
  }
  return undefined
}

const readers: Record<TokenSource, (request: TokenCarrier) => string | undefined> = {
  header ({ headers }) {
    const match = /^Bearer[ \t]+(\S+)\s*$/i.exec(headers.authorization ?? '')
    return match?.[1]
  },
  subprotocol ({ headers }) {
    const offered = (headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim())
    const at = offered.indexOf(BEARER_SUBPROTOCOL)
    return at >= 0 ? offered[at + 1] || undefined : undefined
  },
  query ({ query }) {
    const value = (query as Record<string, unknown> | undefined)?.[QUERY_PARAMETER]
    return typeof value === 'string' && value !== '' ? value : undefined
  }
}

/** ws `handleProtocols`: answer `bearer` when offered, or the browser drops the socket. */
export function selectSubprotocol (offered: Set<string>): string | false {
  return offered.has(BEARER_SUBPROTOCOL) ? BEARER_SUBPROTOCOL : false
}
