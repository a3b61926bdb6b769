/**
 * Hand-offs between nodes (docs/scaling.md): a node that takes over a user
 * connected elsewhere asks the holder to close its connection, and waits for the
 * answer, sent once that `close` is committed to the holder's backend link,
 * so the backend sees close(old) before open(new). An answer that does not
 * come within `cluster.handoffTimeoutMs` (the holder is cut off, or gone)
 * lets the claim go ahead.
 */
import type { Params } from '../../protocol/index.js'
import type { Eviction } from '../domain.js'
import { nodeChannel, type ClusterMessage, type Post } from './messages.js'
import type { Presence } from './transport.js'

type Evict = Extract<ClusterMessage, { t: 'evict' }>

/** How a hand-off ended: no answer in time, the old connection closed, or closed as refreshed (4410, PROTOCOL.md §5d). */
export type HandoffAnswer = 'timeout' | 'closed' | 'refreshed'

export class Handoffs {
  private nextId = 0
  private readonly waiting = new Map<string, (refreshed: boolean) => void>()

  constructor (private readonly nodeId: string, private readonly timeoutMs: number, private readonly post: Post) {}

  /** Asks `old`'s node to close it; `params`, the new connection's, let it tell a refresh from a replace. */
  async request (old: Presence, endpoint: string, user: string, why: Eviction, params?: Params): Promise<HandoffAnswer> {
    const id = `${this.nodeId}#h${++this.nextId}`
    const answered = new Promise<HandoffAnswer>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id)
        resolve('timeout')
      }, this.timeoutMs)
      this.waiting.set(id, (refreshed) => {
        clearTimeout(timer)
        this.waiting.delete(id)
        resolve(refreshed ? 'refreshed' : 'closed')
      })
    })
    this.post(nodeChannel(old.n), { t: 'evict', e: endpoint, u: user, c: old.c, why, from: this.nodeId, id, ...(params ? { p: params } : {}) }, 'handoff')
    return await answered
  }

  /** Another node asks this one to close a connection: answers once `closed` has, saying whether it was a refresh. */
  asked (message: Evict, closed: Promise<void | 'refreshed'>): void {
    void closed.then((how) => this.post(nodeChannel(message.from), { t: 'evicted', id: message.id, ...(how === 'refreshed' ? { r: true } : {}) }, 'handoff'))
  }

  /** The answer to hand-off `id`. */
  answered (id: string, refreshed: boolean): void {
    this.waiting.get(id)?.(refreshed)
  }
}
