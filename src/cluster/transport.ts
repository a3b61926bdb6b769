/**
 * What the cluster needs of its shared store and its message bus, and
 * nothing more (docs/scaling.md). The cluster's logic (cluster-broker.ts,
 * forwarder.ts) runs on these; Redis provides them in production
 * (redis-transport.ts), and memory-transport.ts provides them for several
 * nodes in one process.
 */
import type { EventEmitter } from 'node:events'
import type { DuplicatePolicy } from '../domain.js'
import type { Params } from '../../protocol/index.js'

/** Who holds an (endpoint, user): node `n`, connection `c`, admitted at `s`. A reaper's tombstone has `c` = "reap:<id>". */
export interface Presence { n: string, c: string, s: number }
/** A node's record of each of its connections (the hash `held:<node>` in Redis), for whoever reports its close if the node dies. */
export interface ConnectionRecord { c: string, s: number, p: Params }

/** A connection's records, as a claim writes them. */
export interface Registration { field: string, presence: Presence, record: ConnectionRecord }

/**
 * What a claim found: `old` the presence it replaced, `alive` whether that
 * presence's node (another one) holds its lease, `entry` that node's record
 * of the old connection when this node must report its close. `claimed`
 * false: `reject` and a live node holds the user; nothing was written.
 */
export interface ClaimFound { claimed: boolean, old?: Presence, alive: boolean, entry?: ConnectionRecord }

/**
 * What registering a connection again after an outage found: `set`, no
 * conflict; `won`/`lost`, a live node registered the user meanwhile
 * (`other`), and the policy keeps this connection or that one; `entry`, a
 * dead node's record of the user, this node's to report closed.
 */
export interface ReassertFound { result: 'set' | 'won' | 'lost', other?: Presence, entry?: ConnectionRecord }

/**
 * The shared record of nodes and presence, seen from one node. Each method
 * is atomic; each rejects while the store cannot be reached.
 */
export interface PresenceStore {
  /** Takes or renews this node's lease, and its place in the set of nodes. */
  renewLease (): Promise<void>
  /** A clean goodbye: lease, records and place in the set go, leaving nothing to reap. */
  leave (): Promise<void>
  /** Registers a connection; `reject`: not over another live node's. */
  claim (registration: Registration, policy: DuplicatePolicy): Promise<ClaimFound>
  /** Registers a connection again; a live conflict is settled by `policy` (`replace`: the newer wins, `reject`: the older). */
  reassert (registration: Registration, policy: DuplicatePolicy): Promise<ReassertFound>
  /** Forgets connection `id` of `field` where it is still the one recorded; `holder` is recorded in its place. */
  release (field: string, id: string, holder?: Registration): Promise<void>
  /** The presence of each field, in order. */
  lookup (fields: string[]): Promise<Array<Presence | undefined>>
  /** Was this node reaped while cut off? Asking clears the mark. */
  takeReapedMark (): Promise<boolean>
  /** This node's records, by field. */
  recordsHere (): Promise<Map<string, ConnectionRecord>>
  /** Every node in the set but this one. */
  otherNodes (): Promise<string[]>
  isAlive (node: string): Promise<boolean>
  /** Takes `node` out of the set; true for the one caller that did, which then reaps it. */
  removeNode (node: string): Promise<boolean>
  /**
   * Takes over every record of dead `node` still current (as a tombstone
   * connection "reap:<id>" of this node, so a claim meanwhile waits for the
   * report), marks the node reaped, and returns the records taken.
   */
  reap (node: string): Promise<Array<[field: string, record: ConnectionRecord]>>
}

/** What a failover decision found (PoolStore.decide). */
export type Decision =
  /** This caller marked the member out: it moves these keys, assigned to the member. */
  | { outcome: 'won', keys: string[] }
  /** Another caller already did. */
  | { outcome: 'out' }
  /** No strict majority of live nodes has seen the member down for failoverMs yet. */
  | { outcome: 'wait' }

/** A run-time member's lease as stored (checked when read: the store is not trusted). */
export interface StoredLease { id: string, url: string, weight: number }

/** What registering a run-time member found (PoolStore.register). */
export type LeaseOutcome =
  | { outcome: 'created' | 'renewed' | 'url_changed' | 'full' }
  | { outcome: 'url_in_use', holder: string }

/**
 * The shared state of backend pools (docs/pools.md, "Clusters";
 * pool-scripts.ts), by endpoint: key assignments, the nodes holding each
 * key, each node's view of members down, and the members out. Each method
 * is atomic; each rejects while the store cannot be reached.
 */
export interface PoolStore {
  /** This node holds clients of `key`: assigns it to `proposed` unless it has a member; resolves with its member. */
  hold (endpoint: string, key: string, proposed: string): Promise<string>
  /** This node's last client of `key` left: the key lingers `lingerMs` once no live node holds it. */
  release (endpoint: string, key: string, lingerMs: number): Promise<void>
  /** The members of `keys`, in order (undefined: unassigned). */
  assigned (endpoint: string, keys: string[]): Promise<Array<string | undefined>>
  /** This node sees `member` down (since now, unless already) or up (which ends its being out). */
  see (endpoint: string, member: string, down: boolean): Promise<void>
  /** Decides once for the cluster whether `member` is out: a strict majority of live nodes see it down for `failoverMs`. */
  decide (endpoint: string, member: string, failoverMs: number): Promise<Decision>
  /** The members out. */
  outs (endpoint: string): Promise<string[]>
  /** The keys assigned to `member`. */
  keysOn (endpoint: string, member: string): Promise<string[]>
  /** Moves each key still on `dead` to its heir; resolves with how many moved. */
  move (endpoint: string, dead: string, moves: Array<[key: string, heir: string]>): Promise<number>
  /** Unassigns keys lingering past their time with no live holder; starts the linger of keys held only by dead nodes. */
  sweep (endpoint: string, lingerMs: number): Promise<void>
  /** Registers or renews a run-time member for `leaseMs`; `href` is its URL as compared; at most `maxMembers` live leases. */
  register (endpoint: string, lease: StoredLease & { href: string }, leaseMs: number, maxMembers: number): Promise<LeaseOutcome>
  /** The run-time members, as stored (entries that do not decode are left out). */
  leases (endpoint: string): Promise<StoredLease[]>
  /** Ids of leases past their time. */
  expired (endpoint: string): Promise<string[]>
  /**
   * Ends lease `id` once (`expired`: only if still past its time), marks
   * the member out and moves each of its keys to its heir in `moves`.
   * `dropped` false: another caller did, or it was renewed; `left`: its
   * keys not in `moves`.
   */
  drop (endpoint: string, id: string, expired: boolean, moves: Array<[key: string, heir: string]>): Promise<{ dropped: boolean, left: string[] }>
}

/**
 * Channels between nodes: `node:<id>` (one per node) and `all`. At most
 * once, in order per sender: a message published while a receiver is not
 * subscribed is gone.
 */
export interface ClusterBus {
  /** Listens on `channels` (again after each outage: subscriptions do not outlive one). */
  subscribe (channels: string[]): Promise<void>
  /** Resolves with the number of subscribers reached; rejects when the bus cannot be reached. */
  publish (channel: string, text: string): Promise<number>
  onMessage (listener: (channel: string, text: string) => void): void
}

export interface TransportEvents {
  /** Both the store and the bus can be reached. */
  up: []
  /** One of them cannot be reached. */
  down: []
}

/** The store and the bus, which come and go together. */
export interface ClusterTransport extends EventEmitter<TransportEvents> {
  readonly presence: PresenceStore
  readonly pools: PoolStore
  readonly bus: ClusterBus
  readonly isUp: boolean
  /** Where the transport reaches, without credentials, for logs. */
  readonly target: string
  /** Starts connecting; `up` follows when it can, again after every `down`. */
  connect (): void
  close (): Promise<void>
}
