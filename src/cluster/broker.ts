/**
 * What makes several gateway processes one gateway (docs/scaling.md): who
 * holds each (endpoint, user), the duplicate policy across nodes, and actions
 * carried to the node that holds their user. The in-memory broker is one
 * node alone; the Redis broker shares all of it between nodes.
 */
import type { EventEmitter } from 'node:events'
import type { ClientAction, Params } from '../../protocol/index.js'
import type { Connection, Eviction } from '../domain.js'

/**
 * What a claim found before it registered the connection.
 * - `free`: no other node had the user (or this node did: its registry decides).
 * - `refused`: `reject` policy, and a live node holds the user.
 * - `handedOff`: another node had the user and has closed that connection,
 *   its `close` committed to its backend link (or it did not answer within
 *   `cluster.handoffTimeoutMs`: then `lost` is set, to report it here).
 * - `lost`: the node that had the user is dead; its `close` (1006) is this
 *   node's to report, before the new `open`.
 * - `unchecked`: the broker is away; `cluster.whenRedisDown` decides.
 */
export type Claim =
  | { outcome: 'free' | 'refused' | 'unchecked' }
  | { outcome: 'handedOff' | 'lost', lost?: { params: Params }, refreshed?: true }

export type BrokerState = 'up' | 'down'

export interface BrokerEvents {
  state: [BrokerState]
}

/** What the broker asks of this node's endpoints. */
export interface LocalNode {
  /**
   * Closes connection `id` of `user` (4409 when replaced, 1008 when a reject
   * conflict found it the newer) and resolves once its `close` is committed
   * to the backend link, or at once when it is no longer here. `params`, the
   * new connection's: a session with the same ones is closed as refreshed
   * (4410, PROTOCOL.md §5d), and the promise says `refreshed`.
   */
  evict (endpoint: string, user: string, id: string, why: Eviction, params?: Params): Promise<void | 'refreshed'>
  /** Reports on this node's link that a user (or under `allow` their connection `conn`) of a lost node is gone (close 1006); resolves once committed. */
  reportLost (endpoint: string, user: string, params: Params, conn?: string): Promise<void>
  /** Reports `open` again for a connection the cluster had reported closed while this node was cut off. */
  reopen (endpoint: string, user: string, id: string): void
  /** Carries out actions another node forwarded, for clients of this node only. */
  deliver (endpoint: string, actions: ClientAction[]): void
  /** Every connection connected here, to register again after the broker was away. */
  connections (): Iterable<Connection>
}

export interface Broker extends EventEmitter<BrokerEvents> {
  readonly state: BrokerState
  /** The cluster's name, in `hello`, when nodes share one; absent for a node alone. */
  readonly cluster?: string
  /** Joins the cluster; resolves once joined, or after `waitMs` (then it joins when it can, and serves meanwhile). */
  start (node: LocalNode, waitMs: number): Promise<void>
  /** Registers `connection` as the holder of its (endpoint, user), under its policy across nodes. */
  claim (connection: Connection): Promise<Claim>
  /** Registers a connection admitted while the claim was `unchecked`, if the broker is back by now. */
  register (connection: Connection): void
  /**
   * Forgets `connection`, if it is still the one registered; `holder`: this
   * node's live connection of that user, registered in its place then (a
   * handshake given back before its upgrade had claimed the user over it).
   */
  release (connection: Connection, holder?: Connection): void
  /**
   * Actions for users this node does not hold, or `all`: carried to the
   * nodes concerned, in order. Users connected nowhere are counted as dropped.
   * `everywhere` (an endpoint with `duplicate: "allow"`, whose users may have
   * connections on several nodes): carried to every other node, which
   * delivers to the connections it has (PROTOCOL.md §6a).
   */
  forward (endpoint: string, actions: ClientAction[], everywhere?: boolean): void
  close (): Promise<void>
}
