/**
 * Events a backend link has not yet committed, bounded by count and bytes
 * (config `queue`). A cursor splits them into written and unwritten: without
 * acks an event is committed (released) as soon as it is written; with acks,
 * only when the backend acknowledges it. On reconnect the cursor rewinds, so
 * everything uncommitted is written again, in order.
 *
 * Each user's uncommitted bytes are also counted, against `maxClientBytes`,
 * so that one client cannot take the whole queue (protocol/PROTOCOL.md §5).
 * A `close` is never refused: there is at most one per connection, and
 * refusing it would lose the one event a backend must not miss (a shutdown
 * closes every client at once, more of them than `maxEvents` perhaps).
 */
import type { RawMessage, SyncUser } from '../../protocol/index.js'

/** One encoded event, with what the link needs to keep its roster. */
export interface OutboundEvent {
  /** `refresh`: a live session's new claims (PROTOCOL.md §5d); written only with `backend.refresh`. */
  kind: 'open' | 'refresh' | 'message' | 'close'
  user: string
  /** The connection, on `duplicate: "allow"` endpoints: the client is then this, not the user. */
  conn?: string
  text: string
  /** UTF-8 size of `text` as encoded (a control character a client sent counts as its 6-byte JSON escape). */
  bytes: number
  /** Who opened (or refreshed): set on `open` and `refresh` events, for the next `sync`. */
  opened?: SyncUser
  /** The client's routing key, set by the endpoint's pool (src/pool/pool.ts). */
  key?: string
  /**
   * A player's binary frame on a link with `backend.encoding: "binary"`: its
   * bytes travel raw in a binary link frame (PROTOCOL.md §2a), `text` is empty
   * and `bytes` is the size of its record.
   */
  raw?: RawMessage
  /** Set by the link when the endpoint uses acks. */
  seq?: number
  /** Called once the event is committed, or dropped with the whole queue. */
  settled?: () => void
}

/** The client an event is about, for rosters, routing and shares: its connection under `duplicate: "allow"`, else its user. */
export function clientOf (event: { user: string, conn?: string }): string {
  return event.conn ?? event.user
}

/** What `push` did: queued, or refused because the queue (`full`) or the user's share of it (`over_share`) would pass its bound. */
export type PushResult = 'queued' | 'full' | 'over_share'

export class EventQueue {
  private items: OutboundEvent[] = []
  /** Index of the first uncommitted event. */
  private head = 0
  /** Index of the first unwritten event. */
  private cursor = 0
  private byteCount = 0
  /** Uncommitted bytes per client (`clientOf`). */
  private readonly userBytes = new Map<string, number>()

  constructor (private readonly maxEvents: number, private readonly maxBytes: number, private readonly maxClientBytes: number) {}

  /** Uncommitted events, written or not. */
  get length (): number {
    return this.items.length - this.head
  }

  get unwritten (): number {
    return this.items.length - this.cursor
  }

  get bytes (): number {
    return this.byteCount
  }

  /** Uncommitted bytes of one client's events (`clientOf`). */
  bytesOf (client: string): number {
    return this.userBytes.get(client) ?? 0
  }

  /** Queues the event unless it would pass a bound; a refused event leaves the queue as it was. */
  push (event: OutboundEvent): PushResult {
    const client = clientOf(event)
    const share = this.bytesOf(client)
    // the share first: a flooder that would also fill the queue is refused alone
    if (event.kind === 'message' && share + event.bytes > this.maxClientBytes) return 'over_share'
    if (event.kind !== 'close' && (this.length + 1 > this.maxEvents || this.byteCount + event.bytes > this.maxBytes)) return 'full'
    this.items.push(event)
    this.byteCount += event.bytes
    this.userBytes.set(client, share + event.bytes)
    return 'queued'
  }

  /** The next unwritten events, up to `maxBytes` (at least one); they count as written from now on. */
  nextBatch (maxBytes: number): OutboundEvent[] {
    const out: OutboundEvent[] = []
    let size = 0
    while (this.cursor < this.items.length && (out.length === 0 || size + this.items[this.cursor].bytes <= maxBytes)) {
      const event = this.items[this.cursor++]
      size += event.bytes
      out.push(event)
    }
    return out
  }

  /** Commits every written event; returns them in order. */
  releaseWritten (): OutboundEvent[] {
    return this.release(this.cursor)
  }

  /** Commits written events whose seq is at most `seq`; returns them in order. */
  releaseThrough (seq: number): OutboundEvent[] {
    let end = this.head
    while (end < this.cursor && (this.items[end].seq ?? 0) <= seq) end++
    return this.release(end)
  }

  /** Seq of the last written event (0 when none is queued). */
  get lastWrittenSeq (): number {
    return this.cursor > this.head ? this.items[this.cursor - 1].seq ?? 0 : 0
  }

  /**
   * Gives the last queued `open` of `client` (its user, or under `allow` its
   * connection: `clientOf`) new claims for the roster, as if it had carried
   * them; false when none is queued. For a refresh the backend did not opt
   * into, so the next `sync` still carries its claims.
   */
  reviseOpen (client: string, opened: SyncUser): boolean {
    for (let i = this.items.length - 1; i >= this.head; i--) {
      const event = this.items[i]
      if (clientOf(event) !== client || event.kind === 'message') continue
      if (event.kind !== 'open') return false
      this.items[i] = { ...event, opened }
      return true
    }
    return false
  }

  /** Makes every uncommitted event unwritten again, for a new link. */
  rewind (): void {
    this.cursor = this.head
  }

  /** Drops every uncommitted event; returns them. */
  clear (): OutboundEvent[] {
    const dropped = this.items.slice(this.head)
    this.items = []
    this.head = 0
    this.cursor = 0
    this.byteCount = 0
    this.userBytes.clear()
    return dropped
  }

  private release (end: number): OutboundEvent[] {
    const out = this.items.slice(this.head, end)
    for (const event of out) {
      this.byteCount -= event.bytes
      const client = clientOf(event)
      const left = this.bytesOf(client) - event.bytes
      if (left > 0) this.userBytes.set(client, left)
      else this.userBytes.delete(client)
    }
    this.head = end
    if (this.head === this.items.length) {
      // all committed: drop the references now, not at the next compaction
      this.items = []
      this.head = 0
      this.cursor = 0
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      // compact once the committed prefix dominates, so releasing is never O(n) per event
      this.items = this.items.slice(this.head)
      this.cursor -= this.head
      this.head = 0
    }
    return out
  }
}
