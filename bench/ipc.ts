/**
 * Request/response over a forked child's IPC channel: the bench's
 * orchestrator drives servers and load generators through it.
 */
import { fork, type ChildProcess } from 'node:child_process'

export interface Request { id: number, cmd: string, args?: unknown }
export interface Response { id: number, ok: boolean, result?: unknown, error?: string }

export type Handlers = Record<string, (args: any) => unknown>

/** Child side: answers requests with the named handler; `ready` (with a payload) is sent once at start. */
export function serveIpc (handlers: Handlers, ready: unknown = {}): void {
  if (!process.send) throw new Error('bench child started without an IPC channel')
  process.on('message', (message: Request) => {
    const reply = (response: Omit<Response, 'id'>): void => { process.send?.({ id: message.id, ...response }) }
    const handler = handlers[message.cmd]
    if (!handler) {
      reply({ ok: false, error: `unknown command ${message.cmd}` })
      return
    }
    Promise.resolve()
      .then(() => handler(message.args))
      .then((result) => reply({ ok: true, result }), (err: unknown) => reply({ ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) }))
  })
  // a parent that dies must not leave servers and load generators behind
  process.on('disconnect', () => process.exit(0))
  process.send({ id: 0, ok: true, result: ready })
}

/** Parent side: a forked bench child. */
export class Child {
  private next = 1
  private readonly pending = new Map<number, { resolve (value: unknown): void, reject (err: Error): void }>()
  private exited = false
  readonly ready: Promise<any>

  constructor (readonly name: string, readonly process: ChildProcess) {
    let onReady: (value: unknown) => void
    let onFail: (err: Error) => void
    this.ready = new Promise((resolve, reject) => { onReady = resolve; onFail = reject })
    process.on('message', (message: Response) => {
      if (message.id === 0) {
        onReady(message.result)
        return
      }
      const waiter = this.pending.get(message.id)
      if (!waiter) return
      this.pending.delete(message.id)
      if (message.ok) waiter.resolve(message.result)
      else waiter.reject(new Error(`${name}: ${message.error ?? 'failed'}`))
    })
    process.on('exit', (code, signal) => {
      this.exited = true
      const err = new Error(`${name} exited (code ${code}, signal ${signal})`)
      onFail(err)
      for (const waiter of this.pending.values()) waiter.reject(err)
      this.pending.clear()
    })
  }

  get pid (): number {
    return this.process.pid as number
  }

  async call<T = unknown> (cmd: string, args?: unknown): Promise<T> {
    if (this.exited) throw new Error(`${this.name} has exited`)
    const id = this.next++
    return await new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject })
      this.process.send({ id, cmd, args } satisfies Request)
    })
  }

  /** Asks the child to stop (so a --cpu-prof is written), and kills it if it does not exit in time. */
  async stop (timeoutMs = 5000): Promise<void> {
    if (this.exited) return
    const gone = new Promise<void>((resolve) => this.process.once('exit', () => resolve()))
    this.call('stop').catch(() => {})
    const timer = setTimeout(() => this.process.kill('SIGKILL'), timeoutMs)
    await gone
    clearTimeout(timer)
  }
}

/** Forks a compiled bench module (a path next to this file's directory). */
export async function forkChild<T = unknown> (name: string, modulePath: string, options: { args?: string[], execArgv?: string[], quiet?: boolean } = {}): Promise<{ child: Child, ready: T }> {
  const proc = fork(modulePath, options.args ?? [], {
    execArgv: options.execArgv ?? [],
    stdio: ['ignore', options.quiet === false ? 'inherit' : 'ignore', 'inherit', 'ipc']
  })
  const child = new Child(name, proc)
  const ready = await child.ready as T
  return { child, ready }
}
