/**
 * Where a pool's assignments and failover decisions live (docs/pools.md,
 * "Clusters"): in the process for a node alone (`LocalDirectory`: what this
 * node sees is the truth, and answers are synchronous), in the cluster's
 * store for several nodes (cluster-directory.ts). The pool keeps its own
 * table of the keys it holds clients of either way (assignments.ts); the
 * directory says which member a new key goes to and when a member is out.
 */

/** Names the heir of one of a dead member's keys by this node's view, or undefined when no member can take it. */
export type HeirOf = (key: string) => string | undefined

export interface PoolDirectory {
  /** Whether assignments are shared with other nodes (then a member leaving hands its keys to the members the store names). */
  readonly shared: boolean
  /** How long this node keeps a key after its last client here leaves (in a cluster the store lingers instead). */
  readonly localLingerMs: number
  /** This node's first client of `key` opens: the key's member, at once (a node alone) or once the cluster answered. */
  hold (key: string, proposed: string): string | Promise<string>
  /** This node holds no client of `key` any more. */
  released (key: string): void
  /** This node's link to `member` went up, or down. */
  seen (member: string, up: boolean): void
  /**
   * `member` has been down here for `failoverMs`. True: move its keys now,
   * by this node's view. False: the cluster decides, and `onOut` tells
   * every node once it has.
   */
  down (member: string, heirOf: HeirOf): boolean
  /** The members `keys` are assigned to now, for a failover the cluster decided. */
  assigned (keys: string[]): Promise<Array<string | undefined>>
  /** Called when a member is out cluster-wide (again on each periodic look: a listener must be idempotent). */
  onOut (listener: (member: string) => void): void
  /** `member` left this node's pool for good: nothing of it is kept here nor, for this node, in the store. */
  forget (member: string): void
  close (): void
}

/** A node alone: its own view decides, synchronously. */
export class LocalDirectory implements PoolDirectory {
  readonly shared = false

  constructor (readonly localLingerMs: number) {}

  hold (_key: string, proposed: string): string {
    return proposed
  }

  released (): void {}

  seen (): void {}

  down (): boolean {
    return true
  }

  async assigned (keys: string[]): Promise<Array<string | undefined>> {
    return keys.map(() => undefined)
  }

  onOut (): void {}

  forget (): void {}

  close (): void {}
}
