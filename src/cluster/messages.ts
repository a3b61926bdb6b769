/** What nodes say to each other on the cluster bus (transport.ts), as JSON. */
import type { ClientAction, Params } from '../../protocol/index.js'
import type { Eviction } from '../domain.js'

/** A message on a node's channel, or on the `all` channel. */
export type ClusterMessage =
  /** `n`: deliveries published by `from` on this channel so far, this one included; `ep`: the sender process. */
  | { t: 'actions', e: string, a: ClientAction[], from: string, n: number, ep: string }
  /** `p`: the new connection's params; the holder's session with the same ones is refreshed (4410), not replaced (PROTOCOL.md §5d). */
  | { t: 'evict', e: string, u: string, c: string, why: Eviction, from: string, id: string, p?: Params }
  /** `r`: the old connection was closed as refreshed. */
  | { t: 'evicted', id: string, r?: true }
  /** A backend pool changed for every node (docs/pools.md, "Clusters"): member `m` of endpoint `e` is `out`, or the run-time `members` changed. */
  | { t: 'pool', e: string, m: string, what: PoolChange }

/** What a pool notice says changed. */
export type PoolChange = 'out' | 'members'

export type ActionsMessage = Extract<ClusterMessage, { t: 'actions' }>

/** Every node listens on `all` and on its own channel. */
export const ALL = 'all'

export function nodeChannel (node: string): string {
  return `node:${node}`
}

/** Sends a message; `done` gets the number of subscribers reached, or undefined when the publish failed. */
export type Post = (channel: string, message: ClusterMessage, op: string, done?: (receivers?: number) => void) => void
