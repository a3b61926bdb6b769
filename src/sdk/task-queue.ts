/**
 * Runs one link's work strictly in order, even when a handler is async: a
 * task waits for the promise of the one before it, so a service whose
 * `onOpen` awaits a database still sees `open` before that user's messages.
 * Synchronous tasks never yield, so the common case costs nothing.
 */
export type Task = () => void | Promise<void>

export class TaskQueue {
  private pending: Task[] = []
  /** Index of the next task: an index, not shift(), which copies the whole list each time once it is long. */
  private head = 0
  private running = false
  private idle: Array<() => void> = []

  constructor (private readonly onError: (err: unknown) => void) {}

  push (...tasks: Task[]): void {
    this.pushAll(tasks)
  }

  /** The same for a list: one gateway frame may hold more events than a call can take arguments. */
  pushAll (tasks: readonly Task[]): void {
    for (const task of tasks) this.pending.push(task)
    if (!this.running) void this.drain()
  }

  /** Resolves once every task pushed so far has finished. */
  async whenIdle (): Promise<void> {
    if (!this.running) return
    await new Promise<void>((resolve) => this.idle.push(resolve))
  }

  private async drain (): Promise<void> {
    this.running = true
    while (this.head < this.pending.length) {
      const task = this.pending[this.head++]
      // drop the tasks run once they are most of the list, so a queue that never empties stays bounded
      if (this.head >= 1024 && this.head * 2 >= this.pending.length) {
        this.pending = this.pending.slice(this.head)
        this.head = 0
      }
      try {
        const result = task()
        if (result !== undefined) await result
      } catch (err) {
        this.onError(err)
      }
    }
    this.pending = []
    this.head = 0
    this.running = false
    const waiting = this.idle
    this.idle = []
    for (const resolve of waiting) resolve()
  }
}
