/**
 * Awaiting things that arrive over sockets, in order. `next()` resolves with
 * the next item matching a predicate; one that never comes fails the test
 * with what did come, instead of hanging it.
 */
export class Inbox<T> {
  private readonly items: T[] = []
  private readonly waiters: Array<{ match: (item: T) => boolean, resolve: (item: T) => void }> = []
  /** Everything ever received, for assertions over the whole history. */
  readonly all: T[] = []

  push (item: T): void {
    this.all.push(item)
    const at = this.waiters.findIndex((w) => w.match(item))
    if (at >= 0) {
      const [waiter] = this.waiters.splice(at, 1)
      waiter.resolve(item)
      return
    }
    this.items.push(item)
  }

  /** The next unconsumed item that matches; items skipped over stay for later calls. */
  next (match: (item: T) => boolean = () => true, timeoutMs = 10000, what = 'an item'): Promise<T> {
    const at = this.items.findIndex(match)
    if (at >= 0) return Promise.resolve(this.items.splice(at, 1)[0])
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (item: T) => {
          clearTimeout(timer)
          resolve(item)
        }
      }
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1)
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received: ${JSON.stringify(this.all).slice(-2000)}`))
      }, timeoutMs)
      this.waiters.push(waiter)
    })
  }

  /** Items received and not yet consumed by next(). */
  get pending (): readonly T[] {
    return this.items
  }
}
