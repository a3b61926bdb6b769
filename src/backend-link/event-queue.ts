/** Events not yet written to a backend link, bounded by count and bytes (config `queue`). */
import type { SyncUser } from '../../protocol/index.js'

/** One encoded event, with what the link needs to keep its roster. */
export interface OutboundEvent {
  kind: 'open' | 'message' | 'close'
  user: string
  text: string
  /** UTF-8 size of `text`. */
  bytes: number
  /** Who opened: set on `open` events, for the next `sync`. */
  opened?: SyncUser
}

export class EventQueue {
  private items: OutboundEvent[] = []
  private head = 0
  private byteCount = 0

  constructor (private readonly maxEvents: number, private readonly maxBytes: number) {}

  get length (): number {
    return this.items.length - this.head
  }

  get bytes (): number {
    return this.byteCount
  }

  /** False, and nothing queued, when the event would pass a bound. */
  push (event: OutboundEvent): boolean {
    if (this.length + 1 > this.maxEvents || this.byteCount + event.bytes > this.maxBytes) return false
    this.items.push(event)
    this.byteCount += event.bytes
    return true
  }

  /** Takes events from the front, up to `maxBytes` (at least one). */
  take (maxBytes: number): OutboundEvent[] {
    const out: OutboundEvent[] = []
    let size = 0
    while (this.head < this.items.length && (out.length === 0 || size + this.items[this.head].bytes <= maxBytes)) {
      const event = this.items[this.head++]
      size += event.bytes
      out.push(event)
    }
    this.byteCount -= size
    // compact once the consumed prefix dominates, so shift() is never O(n) per event
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return out
  }

  clear (): number {
    const dropped = this.length
    this.items = []
    this.head = 0
    this.byteCount = 0
    return dropped
  }
}
