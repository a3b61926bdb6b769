/**
 * What a client does after a close: the table in protocol/PROTOCOL.md §7,
 * written out here because this package ships to browsers with no
 * dependencies (the gateway's own catalog is protocol/close-codes.ts).
 */

/** The 1008 reasons a retry cannot help: the duplicate-`reject` race, and a message split into too many frames. The other 1008s (rate limit, queue share) are worth a retry after a pause. */
export const DUPLICATE_REJECTED_REASON = 'already connected (duplicate policy: reject)'
export const TOO_MANY_FRAGMENTS_REASON = 'message in too many fragments'

/** `now`: at the base backoff; `pause`: no sooner than the pause (the gateway asked to slow down); `never`: a retry cannot help. */
export type RetryKind = 'now' | 'backoff' | 'pause' | 'never'

export function retryAfterClose (code: number, reason: string): RetryKind {
  switch (code) {
    case 4401: return 'now' // token expired: a fresh token is all it takes
    case 1008: return reason === DUPLICATE_REJECTED_REASON || reason === TOO_MANY_FRAGMENTS_REASON ? 'never' : 'pause'
    case 1013: return 'pause'
    case 1000: // a backend's close, meant
    case 1002:
    case 1003:
    case 1007:
    case 1009:
    case 1010:
    case 4409: return 'never'
  }
  // 4000-4999 are the backend's own codes: it closed this player on purpose
  if (code >= 4000 && code <= 4999) return 'never'
  // 1001 drain, 1005, 1006 lost, 1011-1015 and anything unknown: the connection broke, not the request
  return 'backoff'
}

/** Equal jitter: half the exponential step, plus up to as much again at random, so a crowd does not return in step. */
export function backoffMs (failures: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const step = Math.min(maxMs, minMs * 2 ** Math.min(failures, 30))
  return Math.round(step / 2 + random() * step / 2)
}
