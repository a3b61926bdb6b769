/**
 * Hand-offs between nodes (docs/scaling.md): a node that takes over a user
 * connected elsewhere asks the holder to close its connection, and waits for the
 * answer, sent once that `close` is committed to the holder's backend link,
 * so the backend sees close(old) before open(new). An answer that does not
 * come within `cluster.handoffTimeoutMs` (the holder is cut off, or gone)
 * lets the claim go ahead.
 */
import type { Eviction } from '../domain.js'
import { nodeChannel, type ClusterMessage, type Post } from './messages.js'
import type { Presence } from './transport.js'

type Evict = Extract<ClusterMessage, { t: 'evict' }>

export class Handoffs {
  private nextId = 0
  private readonly waiting = new Map<string, () => void>()

  constructor (private readonly nodeId: string, private readonly timeoutMs: number, private readonly post: Post) {}

  /** Asks `old`'s node to close it; true once it answered, false on timeout. */
  async request (old: Presence, endpoint: string, user: string, why: Eviction): Promise<boolean> {
    const id = `${this.nodeId}#h${++this.nextId}`
    const answered = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id)
        resolve(false)
      }, this.timeoutMs)
      this.waiting.set(id, () => {
        clearTimeout(timer)
        this.waiting.delete(id)
        resolve(true)
      })
    })
    this.post(nodeChannel(old.n), { t: 'evict', e: endpoint, u: user, c: old.c, why, from: this.nodeId, id }, 'handoff')
    return await answered
  }

  /** Another node asks this one to close a connection: answers once `closed` has. */
  asked (message: Evict, closed: Promise<void>): void {
    void closed.then(() => this.post(nodeChannel(message.from), { t: 'evicted', id: message.id }, 'handoff'))
  }

  /** The answer to hand-off `id`. */
  answered (id: string): void {
    this.waiting.get(id)?.()
  }
}
