/**
 * The (endpoint, user) → sessions map of one endpoint, and its duplicate
 * policy (PROTOCOL.md §6): `replace` displaces the old session, `reject`
 * refuses the new, `allow` keeps up to `maxPerUser` sessions of a user, each
 * known by its connection id (`conn`), and displaces the oldest past that.
 */
import type { DuplicatePolicy } from '../domain.js'
import type { ClientSession } from './client-session.js'

/** What `register` did: registered (displacing a session the caller must close), or refused under `reject`. */
export type Registered =
  | { registered: true, displaced?: ClientSession }
  | { registered: false }

const NONE: readonly ClientSession[] = Object.freeze([])

export class SessionRegistry {
  /** Each user's sessions, oldest first: at most one except under `allow`. */
  private readonly sessions = new Map<string, ClientSession[]>()
  /** Under `allow`: sessions by connection id. */
  private readonly byConn = new Map<string, ClientSession>()
  private count = 0

  /** `maxPerUser` counts only under `allow`; the other policies keep one session per user. */
  constructor (readonly policy: DuplicatePolicy, readonly maxPerUser = 1) {}

  get size (): number {
    return this.count
  }

  /** The user's newest session: under `replace` and `reject`, their only one. */
  get (user: string): ClientSession | undefined {
    return this.sessions.get(user)?.at(-1)
  }

  /** Every session of the user, oldest first. */
  connectionsOf (user: string): readonly ClientSession[] {
    return this.sessions.get(user) ?? NONE
  }

  /** Under `allow`, the session with connection id `conn`. */
  connection (conn: string): ClientSession | undefined {
    return this.byConn.get(conn)
  }

  /** The session a backend link or pool names by its client key: its connection id under `allow`, else its user. */
  client (key: string): ClientSession | undefined {
    return this.policy === 'allow' ? this.byConn.get(key) : this.get(key)
  }

  /** Would a new connection of `user` be refused? Asked before the upgrade, to answer 409. A held session is the user's to resume, never a duplicate. */
  refuses (user: string): boolean {
    const existing = this.get(user)
    return this.policy === 'reject' && existing !== undefined && !existing.isHeld
  }

  /**
   * Registers a session. Under `replace` the previous one is returned so the
   * caller can close it (its close is reported before this one's open); under
   * `allow`, the user's oldest when they already hold `maxPerUser` (it stays
   * registered until the caller's close removes it).
   */
  register (session: ClientSession): Registered {
    const existing = this.sessions.get(session.user)
    if (this.policy === 'allow') {
      const list = existing ?? []
      const displaced = list.length >= this.maxPerUser ? list[0] : undefined
      list.push(session)
      this.sessions.set(session.user, list)
      if (session.conn !== undefined) this.byConn.set(session.conn, session)
      this.count++
      return displaced ? { registered: true, displaced } : { registered: true }
    }
    if (existing && this.policy === 'reject') return { registered: false }
    this.sessions.set(session.user, [session])
    if (!existing) this.count++
    return existing ? { registered: true, displaced: existing[0] } : { registered: true }
  }

  /** Forgets a session, but only if it is still registered: a late close of a replaced socket never removes its successor. */
  remove (session: ClientSession): boolean {
    const list = this.sessions.get(session.user)
    const at = list?.indexOf(session) ?? -1
    if (list === undefined || at < 0) return false
    list.splice(at, 1)
    if (list.length === 0) this.sessions.delete(session.user)
    if (session.conn !== undefined && this.byConn.get(session.conn) === session) this.byConn.delete(session.conn)
    this.count--
    return true
  }

  /** Every session, in an array taken now (a close on the way changes nothing in it); a plain loop, not the generator below. */
  all (): ClientSession[] {
    const out: ClientSession[] = []
    for (const list of this.sessions.values()) {
      for (let i = 0; i < list.length; i++) out.push(list[i])
    }
    return out
  }

  * values (): IterableIterator<ClientSession> {
    for (const list of this.sessions.values()) yield * list
  }
}
