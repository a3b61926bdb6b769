/**
 * The gateway's domain types, shared by the routes, the relay, the sessions
 * and the cluster. A leaf: it imports only the schemas' types, so none of
 * those modules has to import another just to name a connection.
 */
import type { Params } from '../protocol/index.js'
import type { EndpointConfig } from './config/schema.js'

/** What a second connection of a user does (PROTOCOL.md §6): `replace` displaces the old session, `reject` refuses the new. */
export type DuplicatePolicy = EndpointConfig['duplicate']

/** One client connection as the cluster knows it. */
export interface Connection {
  endpoint: string
  user: string
  /** Unique across the cluster and time: `<nodeId>#<n>`. */
  id: string
  params: Params
  /** When the handshake was admitted (ms since the epoch): under `replace` the newest connection wins a conflict. */
  since: number
  /** The endpoint's duplicate policy, which also settles conflicts found after a broker outage. */
  policy: DuplicatePolicy
  /** The handshake asked to take over the user's live session with the same params (`?refresh=1`, PROTOCOL.md §5d). */
  refresh?: true
}

/** Why a node is asked to close one of its connections. */
export type Eviction = 'replaced' | 'rejected'

/** An admitted handshake: its connection, and the close of a lost node's connection to report first. */
export interface Ticket {
  connection: Connection
  lost?: { params: Params }
  /** Admitted while the cluster could not be asked: registered once it can. */
  unchecked?: true
  /** The node that held the user closed its session with 4410 for this one: a refresh across nodes (PROTOCOL.md §5d). */
  refreshed?: true
  /**
   * Called once, as the socket is accepted: ends the claim's wait. Says why
   * the connection must close at once when another one superseded it
   * meanwhile (it never goes live: the backend hears nothing of it).
   */
  upgrade (): Eviction | undefined
}
