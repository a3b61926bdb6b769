/**
 * Close codes the gateway sends to players (PROTOCOL.md §7). Relay code names
 * these constants; it never writes a bare number. `retry` tells a client
 * whether reconnecting can help. Only codes the gateway really uses belong
 * here: a fault in handling one frame is isolated and counted, never a
 * reason to close a player, so there is no 1011.
 */
export interface CloseCode {
  readonly code: number
  readonly reason: string
  readonly retry: boolean
}

export const CloseCodes = {
  NORMAL: { code: 1000, reason: 'normal closure', retry: false },
  GOING_AWAY: { code: 1001, reason: 'gateway shutting down', retry: true },
  PROTOCOL_ERROR: { code: 1002, reason: 'protocol error', retry: false },
  /** Not sent on the wire: reported in `close` events when no close frame was seen. */
  ABNORMAL: { code: 1006, reason: 'connection lost', retry: true },
  INVALID_PAYLOAD: { code: 1007, reason: 'invalid frame payload', retry: false },
  RATE_LIMITED: { code: 1008, reason: 'rate limit exceeded', retry: true },
  DUPLICATE_REJECTED: { code: 1008, reason: 'already connected (duplicate policy: reject)', retry: false },
  /** The client's events waiting for its backend passed `queue.maxClientBytes`. */
  QUEUE_SHARE_EXCEEDED: { code: 1008, reason: 'too much queued for the backend, slow down', retry: true },
  /** Sent by `ws` (its `maxFragments`); the reason is the gateway's. */
  TOO_MANY_FRAGMENTS: { code: 1008, reason: 'message in too many fragments', retry: false },
  MESSAGE_TOO_BIG: { code: 1009, reason: 'message too big', retry: false },
  BACKEND_UNAVAILABLE: { code: 1013, reason: 'backend unavailable, try again later', retry: true },
  SLOW_CONSUMER: { code: 1013, reason: 'client too slow to read, try again later', retry: true },
  HEARTBEAT_TIMEOUT: { code: 1006, reason: 'heartbeat timeout', retry: true },
  /** Not sent on the wire: reported by a surviving node for a user of a gateway node that died. */
  NODE_LOST: { code: 1006, reason: 'gateway node lost', retry: true },
  TOKEN_EXPIRED: { code: 4401, reason: 'token expired', retry: true },
  REPLACED: { code: 4409, reason: 'replaced by a newer connection', retry: false },
  /** A refresh (PROTOCOL.md §5d): the same user and params connected again; the session goes on on the new socket. */
  REFRESHED: { code: 4410, reason: 'session moved to a refreshed connection', retry: false }
} as const satisfies Record<string, CloseCode>

/** Codes a backend may choose in a `close` action. */
export function isBackendCloseCode (code: number): boolean {
  return code === 1000 || (code >= 4000 && code <= 4999)
}

/** RFC 6455 caps a close reason at 123 bytes; `ws` throws past it. */
export const MAX_REASON_BYTES = 123

/** Cuts a reason to at most 123 UTF-8 bytes without splitting a character. */
export function truncateReason (reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_REASON_BYTES) return reason
  let out = ''
  let bytes = 0
  for (const ch of reason) {
    const size = Buffer.byteLength(ch)
    if (bytes + size > MAX_REASON_BYTES) break
    out += ch
    bytes += size
  }
  return out
}
