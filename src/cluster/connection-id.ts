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

/**
 * Under `duplicate: "allow"` each connection has its own presence field
 * (PROTOCOL.md §6a): "<endpoint>:<user>" and this separator, then its id.
 * The separator cannot be confused with a user's own bytes, because a
 * field is only ever split knowing its record's connection id.
 */
const CONN_SEPARATOR = '\u0000'

/** The presence field of a connection: one per (endpoint, user), or one per connection under `allow`. */
export function presenceField (connection: { endpoint: string, user: string, id: string, policy: string }): string {
  const base = `${connection.endpoint}:${connection.user}`
  return connection.policy === 'allow' ? `${base}${CONN_SEPARATOR}${connection.id}` : base
}

/** A field back as endpoint and user, and the connection (`conn`) when it is a per-connection field of connection `id`. */
export function parseField (field: string, id: string): { endpoint: string, user: string, conn?: string } {
  const at = field.indexOf(':')
  const endpoint = field.slice(0, at)
  const suffix = `${CONN_SEPARATOR}${id}`
  if (field.endsWith(suffix)) return { endpoint, user: field.slice(at + 1, -suffix.length), conn: id }
  return { endpoint, user: field.slice(at + 1) }
}
