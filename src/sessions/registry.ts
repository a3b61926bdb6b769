/**
 * The (endpoint, user) → session map of one endpoint, and its duplicate policy
 * (PROTOCOL.md §6): `replace` displaces the old session, `reject` refuses the new.
 */
import type { DuplicatePolicy } from '../domain.js'
import type { ClientSession } from './client-session.js'

/** What `register` did: registered (displacing the previous session under `replace`), or refused under `reject`. */
export type Registered =
  | { registered: true, displaced?: ClientSession }
  | { registered: false }

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
    const existing = this.sessions.get(user)
    return this.policy === 'reject' && existing !== undefined && !existing.isHeld
  }

  /**
   * Registers a session. Under `replace` the previous one is returned so the
   * caller can close it (its close is reported before this one's open).
   */
  register (session: ClientSession): Registered {
    const existing = this.sessions.get(session.user)
    if (existing && this.policy === 'reject') return { registered: false }
    this.sessions.set(session.user, session)
    return existing ? { registered: true, displaced: existing } : { registered: true }
  }

  /** Forgets a session, but only if it is still the user's registered one: a late close of a replaced socket never removes its successor. */
  remove (session: ClientSession): boolean {
    if (this.sessions.get(session.user) !== session) return false
    this.sessions.delete(session.user)
    return true
  }

  values (): IterableIterator<ClientSession> {
    return this.sessions.values()
  }
}
