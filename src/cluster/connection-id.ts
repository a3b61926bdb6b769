/**
 * Connection ids: `<nodeId>#<n>`, `n` counting the node's claims. A node
 * sends its claims for one (endpoint, user) to the broker in the order it
 * issued them (the Redis broker keeps that order), so of two ids of one
 * node the lower was registered first, and is overwritten by the higher.
 */
export function connectionId (node: string, n: number): string {
  return `${node}#${n}`
}

/** Was `id` claimed by the same node as `than`, and no later? Ids of other nodes (or a reaper's tombstones) never are. */
export function claimedNoLater (id: string, than: string): boolean {
  const a = id.lastIndexOf('#')
  const b = than.lastIndexOf('#')
  return a > 0 && b > 0 && id.slice(0, a) === than.slice(0, b) && Number(id.slice(a + 1)) <= Number(than.slice(b + 1))
}
