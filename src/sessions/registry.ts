/**
 * The (endpoint, user) → session map of one endpoint, and its duplicate policy
 * (PROTOCOL.md §6): `replace` displaces the old session, `reject` refuses the new.
 */
import type { DuplicatePolicy } from '../domain.js'
import type { ClientSession } from './client-session.js'

export type Admission =
  | { admitted: true, displaced?: ClientSession }
  | { admitted: false }

export class SessionRegistry {
  private readonly sessions = new Map<string, ClientSession>()

  constructor (readonly policy: DuplicatePolicy) {}

  get size (): number {
    return this.sessions.size
  }

  get (user: string): ClientSession | undefined {
    return this.sessions.get(user)
  }

  /** Would a new connection of `user` be refused? Asked before the upgrade, to answer 409. A held session is the user's to resume, never a duplicate. */
  refuses (user: string): boolean {
    const current = this.sessions.get(user)
    return this.policy === 'reject' && current !== undefined && !current.isHeld
  }

  /**
   * Registers a session. Under `replace` the previous one is returned so the
   * caller can close it (its close is reported before this one's open).
   */
  admit (session: ClientSession): Admission {
    const current = this.sessions.get(session.user)
    if (current && this.policy === 'reject') return { admitted: false }
    this.sessions.set(session.user, session)
    return current ? { admitted: true, displaced: current } : { admitted: true }
  }

  /** Forgets a session, but only if it is still the user's current one: a late close of a replaced socket never removes its successor. */
  remove (session: ClientSession): boolean {
    if (this.sessions.get(session.user) !== session) return false
    this.sessions.delete(session.user)
    return true
  }

  values (): IterableIterator<ClientSession> {
    return this.sessions.values()
  }
}
