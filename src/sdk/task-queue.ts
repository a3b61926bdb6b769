/**
 * Runs one link's work strictly in order, even when a handler is async: a
 * task waits for the promise of the one before it, so a service whose
 * `onOpen` awaits a database still sees `open` before that user's messages.
 * Synchronous tasks never yield, so the common case costs nothing.
 */
export type Task = () => void | Promise<void>

export class TaskQueue {
  private readonly pending: Task[] = []
  private running = false
  private idle: Array<() => void> = []

  constructor (private readonly onError: (err: unknown) => void) {}

  push (...tasks: Task[]): void {
    this.pending.push(...tasks)
    if (!this.running) void this.drain()
  }

  /** Resolves once every task pushed so far has finished. */
  async whenIdle (): Promise<void> {
    if (!this.running) return
    await new Promise<void>((resolve) => this.idle.push(resolve))
  }

  private async drain (): Promise<void> {
    this.running = true
    for (let task = this.pending.shift(); task !== undefined; task = this.pending.shift()) {
      try {
        const result = task()
        if (result !== undefined) await result
      } catch (err) {
        this.onError(err)
      }
    }
    this.running = false
    const waiting = this.idle
    this.idle = []
    for (const resolve of waiting) resolve()
  }
}
