/**
 * Sticky key → member assignments of one pool (docs/pools.md): a key is
 * assigned when its first client joins and stays on that member while it has
 * clients, plus `lingerMs` after the last one leaves. Only a failover moves
 * a key (`move`). Counts keys and clients per member for the metrics and
 * for drain.
 */

interface Assignment {
  member: string
  clients: number
  linger?: NodeJS.Timeout
}

export interface MemberLoad {
  keys: number
  clients: number
}

export interface AssignmentsOptions {
  lingerMs: number
  /** The member's load changed. */
  changed (member: string): void
  /** A key's linger ran out: it is no longer assigned. */
  released (key: string, member: string): void
}

export class Assignments {
  private readonly keys = new Map<string, Assignment>()
  private readonly loads = new Map<string, MemberLoad>()

  constructor (private readonly options: AssignmentsOptions) {}

  memberOf (key: string): string | undefined {
    return this.keys.get(key)?.member
  }

  loadOf (member: string): MemberLoad {
    return this.loads.get(member) ?? { keys: 0, clients: 0 }
  }

  /** Keys assigned to `member`, lingering ones included, in assignment order. */
  keysOf (member: string): string[] {
    return [...this.keys].filter(([, a]) => a.member === member).map(([key]) => key)
  }

  /** Clients of `key` now. */
  clientsOf (key: string): number {
    return this.keys.get(key)?.clients ?? 0
  }

  /** A client of `key` arrived; an unassigned key goes to `choose()`. Returns the key's member. */
  join (key: string, choose: () => string): string {
    let assignment = this.keys.get(key)
    if (assignment === undefined) {
      assignment = { member: choose(), clients: 0 }
      this.keys.set(key, assignment)
      this.adjust(assignment.member, 1, 0)
    }
    clearTimeout(assignment.linger)
    assignment.linger = undefined
    assignment.clients++
    this.adjust(assignment.member, 0, 1)
    return assignment.member
  }

  /** A client of `key` left; the last one starts the linger. */
  leave (key: string): void {
    const assignment = this.keys.get(key)
    if (assignment === undefined || assignment.clients === 0) return
    assignment.clients--
    this.adjust(assignment.member, 0, -1)
    if (assignment.clients > 0) return
    if (this.options.lingerMs === 0) {
      this.release(key, assignment)
      return
    }
    assignment.linger = setTimeout(() => this.release(key, assignment), this.options.lingerMs)
  }

  /** Re-homes `key` (a failover); its clients and linger go with it. */
  move (key: string, member: string): void {
    const assignment = this.keys.get(key)
    if (assignment === undefined || assignment.member === member) return
    this.adjust(assignment.member, -1, -assignment.clients)
    assignment.member = member
    this.adjust(member, 1, assignment.clients)
  }

  clear (): void {
    for (const assignment of this.keys.values()) clearTimeout(assignment.linger)
    this.keys.clear()
    this.loads.clear()
  }

  private release (key: string, assignment: Assignment): void {
    if (this.keys.get(key) !== assignment) return
    this.keys.delete(key)
    this.adjust(assignment.member, -1, 0)
    this.options.released(key, assignment.member)
  }

  private adjust (member: string, keys: number, clients: number): void {
    const load = this.loadOf(member)
    const next = { keys: load.keys + keys, clients: load.clients + clients }
    if (next.keys === 0 && next.clients === 0) this.loads.delete(member)
    else this.loads.set(member, next)
    this.options.changed(member)
  }
}
