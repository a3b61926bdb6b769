/**
 * Who is connected, and through which gateway link. Pure bookkeeping: each
 * method updates the table and returns the opens and closes the service must
 * be told about, in order; the caller does the telling and the I/O.
 */
import { CloseCodes, type Claims, type CloseCode, type Params, type SyncUser } from '../../protocol/index.js'

/**
 * Close codes the SDK reports to `onClose` for ends it infers rather than
 * reads from a `close` event. 1006 as for any connection that ended without
 * a close frame being seen; 4409 as the gateway's own `replace`.
 */
export const InferredCloses = {
  /** A gateway's `sync` no longer lists the user: they left while the link was down. */
  ABSENT_FROM_SYNC: { code: CloseCodes.ABNORMAL.code, reason: 'absent from gateway sync', retry: true },
  /** The user's gateway link dropped and did not come back within `linkGraceMs`. */
  LINK_LOST: { code: CloseCodes.ABNORMAL.code, reason: 'gateway link lost', retry: true },
  /** The user opened again, through the same gateway, without a close in between. */
  REPLACED: CloseCodes.REPLACED,
  /** The user opened again through another gateway; the old connection is closed with this code. */
  MOVED: { code: CloseCodes.REPLACED.code, reason: 'replaced by a connection through another gateway', retry: false }
} as const satisfies Record<string, CloseCode>

export interface Presence<L> {
  user: string
  /** The connection id, from a gateway endpoint with `duplicate: "allow"` (PROTOCOL.md §6a); such a user may have several presences. */
  conn?: string
  claims: Claims
  params: Params
  link: L
  /**
   * Closed by its node of a cluster as refreshed (4410): kept, waiting for
   * the `open` marked `refresh` that another node sends (PROTOCOL.md §5d);
   * the close, if that never comes.
   */
  moving?: { code: number, reason: string }
}

export type RosterChange<L> =
  | { kind: 'open', presence: Presence<L> }
  /** New claims for a connected user: a `refresh` event, a refresh across nodes, or a `sync` listing new claims with the same params. */
  | { kind: 'refresh', presence: Presence<L> }
  /** A user closed as refreshed by a node of a cluster: wait a while for their open on another node (`settleMove`). */
  | { kind: 'moving', presence: Presence<L> }
  /** `displaced`: the user is still connected on `presence.link`, whose gateway must be told to close them. */
  | { kind: 'close', presence: Presence<L>, code: number, reason: string, displaced: boolean }

/** How links relate, for a roster with links of clustered gateways. */
export interface LinkRelations<L> {
  /** Links of one gateway cluster (hello `cluster`): they settle duplicates among themselves. */
  sameCluster (a: L, b: L): boolean
  isOpen (link: L): boolean
}

const UNRELATED: LinkRelations<unknown> = { sameCluster: () => false, isOpen: () => true }

/**
 * What the roster keys a presence by: the user, or with a `conn` that
 * connection (prefixes keep a user id from ever equalling a connection id).
 */
export function clientKey (entry: { user: string, conn?: string }): string {
  return entry.conn === undefined ? `u:${entry.user}` : `c:${entry.conn}`
}

export class Roster<L> {
  private readonly byKey = new Map<string, Presence<L>>()
  /** Each user's presence keys, in the order they opened. */
  private readonly byUser = new Map<string, Set<string>>()

  constructor (private readonly relations: LinkRelations<L> = UNRELATED) {}

  /** Connections known: users, each counted once per connection. */
  get size (): number {
    return this.byKey.size
  }

  /** The user's presence (their oldest connection, when they have several). */
  get (user: string): Presence<L> | undefined {
    const first = this.byUser.get(user)?.values().next()
    return first === undefined || first.done === true ? undefined : this.byKey.get(first.value)
  }

  /** Every presence of the user, oldest first. */
  connectionsOf (user: string): Array<Presence<L>> {
    return [...this.byUser.get(user) ?? []].map((key) => this.byKey.get(key) as Presence<L>)
  }

  /** The presence of connection `conn`. */
  connection (conn: string): Presence<L> | undefined {
    return this.byKey.get(clientKey({ user: '', conn }))
  }

  users (): string[] {
    return [...this.byUser.keys()]
  }

  /** The link `user` is connected through; an event about them from another link is about a stale connection. */
  linkOf (user: string): L | undefined {
    return this.get(user)?.link
  }

  /** Whether `link` holds this user's connection (`conn`, or the user's only one): events about others are stale. */
  holds (link: L, user: string, conn?: string): boolean {
    return this.byKey.get(clientKey({ user, conn }))?.link === link
  }

  /**
   * A user opened through `link`; whoever had the name (or the connection
   * id) before is closed first. A connection on another gateway is closed
   * there too, unless that gateway is of the same cluster, which settles
   * duplicates itself.
   */
  open (link: L, user: string, claims: Claims, params: Params, conn?: string, refresh = false): RosterChange<L>[] {
    const changes: RosterChange<L>[] = []
    const key = clientKey({ user, conn })
    const previous = this.byKey.get(key)
    if (previous && refresh && this.relations.sameCluster(previous.link, link) && sameJson(previous.params, params)) {
      // the other half of a refresh across nodes: the same session, on another link. The
      // old node's 4410 travels on another link and may come later: `close` then ignores it,
      // as from a link that no longer holds the user
      previous.moving = undefined
      previous.link = link
      previous.claims = claims
      return [{ kind: 'refresh', presence: previous }]
    }
    if (previous?.moving) {
      this.forget(key, previous)
      changes.push({ kind: 'close', presence: previous, code: previous.moving.code, reason: previous.moving.reason, displaced: false })
    } else if (previous) {
      const why = previous.link === link ? InferredCloses.REPLACED : InferredCloses.MOVED
      const displaced = previous.link !== link && !this.relations.sameCluster(previous.link, link)
      this.forget(key, previous)
      changes.push({ kind: 'close', presence: previous, code: why.code, reason: why.reason, displaced })
    }
    const presence: Presence<L> = conn === undefined ? { user, claims, params, link } : { user, conn, claims, params, link }
    this.byKey.set(key, presence)
    const keys = this.byUser.get(user)
    if (keys) keys.add(key)
    else this.byUser.set(user, new Set([key]))
    changes.push({ kind: 'open', presence })
    return changes
  }

  /**
   * A `close` event; ignored (empty) when `link` does not hold the user (or
   * the connection), unless the link that does is down and of the same
   * cluster: a surviving node reporting the users of a dead one.
   */
  close (link: L, user: string, code: number, reason: string, conn?: string): RosterChange<L>[] {
    const key = clientKey({ user, conn })
    const presence = this.byKey.get(key)
    if (!presence || presence.moving) return []
    const holder = presence.link
    if (holder !== link && !(this.relations.sameCluster(holder, link) && !this.relations.isOpen(holder))) return []
    if (code === CloseCodes.REFRESHED.code && this.relations.sameCluster(link, link)) {
      presence.moving = { code, reason }
      return [{ kind: 'moving', presence }]
    }
    this.forget(key, presence)
    return [{ kind: 'close', presence, code, reason, displaced: false }]
  }

  /** A `refresh` event: `link` must hold the user (or the connection). */
  refresh (link: L, user: string, claims: Claims, conn?: string): RosterChange<L>[] {
    const presence = this.byKey.get(clientKey({ user, conn }))
    if (!presence || presence.link !== link || presence.moving) return []
    presence.claims = claims
    return [{ kind: 'refresh', presence }]
  }

  /** The wait for a moving user's open is over: if `presence` is still moving, it is closed with the code it was closed with. */
  settleMove (presence: Presence<L>): RosterChange<L>[] {
    const { moving } = presence
    const key = clientKey(presence)
    if (!moving || this.byKey.get(key) !== presence) return []
    this.forget(key, presence)
    return [{ kind: 'close', presence, code: moving.code, reason: moving.reason, displaced: false }]
  }

  /**
   * A `sync` from `link` (PROTOCOL.md §5): connections of the link it no
   * longer lists are closed, listed ones we do not know are opened, a listed
   * one whose params changed is closed and opened again, and one with only
   * new claims (a refresh, PROTOCOL.md §5d) is refreshed. A moving one waits
   * for its open elsewhere.
   */
  sync (link: L, listed: readonly SyncUser[]): RosterChange<L>[] {
    const wanted = new Map(listed.map((entry) => [clientKey(entry), entry]))
    const changes: RosterChange<L>[] = []
    for (const [key, presence] of [...this.byKey]) {
      if (presence.link !== link || presence.moving) continue
      const entry = wanted.get(key)
      if (entry && sameJson(entry.params, presence.params)) {
        wanted.delete(key)
        if (!sameJson(entry.claims, presence.claims)) changes.push(...this.refresh(link, presence.user, entry.claims, presence.conn))
      } else {
        changes.push(...this.close(link, presence.user, InferredCloses.ABSENT_FROM_SYNC.code, InferredCloses.ABSENT_FROM_SYNC.reason, presence.conn))
      }
    }
    for (const entry of wanted.values()) changes.push(...this.open(link, entry.user, entry.claims, entry.params, entry.conn))
    return changes
  }

  /** Every user of a link that is gone for good. */
  dropLink (link: L): RosterChange<L>[] {
    const changes: RosterChange<L>[] = []
    for (const presence of [...this.byKey.values()]) {
      if (presence.link === link) {
        changes.push(...this.close(link, presence.user, InferredCloses.LINK_LOST.code, InferredCloses.LINK_LOST.reason, presence.conn))
      }
    }
    return changes
  }

  /** A gateway came back on a new socket: its users now travel on that one. */
  moveLink (from: L, to: L): void {
    for (const presence of this.byKey.values()) {
      if (presence.link === from) presence.link = to
    }
  }

  /**
   * Users grouped by the links they are connected through; names we do not
   * know come back in `missing`. A user with connections through several
   * gateways is listed under the link of each, but once per cluster: one
   * link of a cluster reaches the user's connections on all its nodes.
   */
  group (users: readonly string[]): { byLink: Map<L, string[]>, missing: string[] } {
    const byLink = new Map<L, string[]>()
    const missing: string[] = []
    for (const user of users) {
      const keys = this.byUser.get(user)
      if (keys === undefined) {
        missing.push(user)
        continue
      }
      const links: L[] = []
      for (const key of keys) {
        const link = (this.byKey.get(key) as Presence<L>).link
        if (!links.some((l) => l === link || this.relations.sameCluster(l, link))) links.push(link)
      }
      for (const link of links) {
        const list = byLink.get(link)
        if (list) list.push(user)
        else byLink.set(link, [user])
      }
    }
    return { byLink, missing }
  }

  private forget (key: string, presence: Presence<L>): void {
    this.byKey.delete(key)
    const keys = this.byUser.get(presence.user)
    keys?.delete(key)
    if (keys?.size === 0) this.byUser.delete(presence.user)
  }
}

/** Both sides come from the same gateway's JSON, so key order matches. */
function sameJson (a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}
