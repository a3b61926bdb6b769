/**
 * Chaos harness shared by test/chaos.test.ts and bench/chaos.ts: players
 * streaming numbered messages, a backend process to SIGKILL and restart, a
 * TCP proxy to sever the gateway↔backend link, and the tally that says
 * whether every message arrived, in order, duplicated only where allowed.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { createServer, connect as dial, type Server, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { connect, type TestClient } from './client.js'
import { tokenFor } from './tokens.js'

/** What one backend process was handed, in arrival order. */
export interface Incarnation {
  /** [user, n, seq, the seq of the sync of the link it came on]. */
  messages: Array<[string, number, number, number]>
  opens: string[]
  closes: string[]
}

/** The chaos backend (chaos-backend.ts) as a child process, one Incarnation per spawn. */
export class BackendProcesses extends EventEmitter<{ line: [] }> {
  readonly incarnations: Incarnation[] = []
  private child?: ChildProcess
  private readonly script = fileURLToPath(new URL('./chaos-backend.js', import.meta.url))

  constructor (private readonly port: number, private readonly token: string) {
    super()
  }

  /** Spawns the next incarnation; resolves once it listens. */
  async start (): Promise<void> {
    const child = spawn(process.execPath, [this.script], {
      env: { ...process.env, CHAOS_PORT: String(this.port), CHAOS_TOKEN: this.token },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stderr = ''
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
      process.stderr.write(chunk)
    })
    this.child = child
    const seen: Incarnation = { messages: [], opens: [], closes: [] }
    this.incarnations.push(seen)
    let syncSeq = 0
    let rest = ''
    const ready = new Promise<void>((resolve, reject) => {
      child.once('close', (code) => reject(new Error(`chaos backend exited (${code}) before it was ready: ${stderr.trim()}`)))
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        const lines = (rest + chunk).split('\n')
        rest = lines.pop() ?? ''
        for (const line of lines) {
          const [kind, a, b, c] = line.split(' ')
          if (kind === 'm') seen.messages.push([a, Number(b), Number(c), syncSeq])
          else if (kind === 'sync') syncSeq = Number(a)
          else if (kind === 'open') seen.opens.push(a)
          else if (kind === 'close') seen.closes.push(`${a} ${b}`)
          else if (kind === 'ready') resolve()
        }
        this.emit('line')
      })
    })
    await ready
  }

  /** SIGKILL, then wait until the process is gone and its port free. */
  async kill (): Promise<void> {
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
}

/** A TCP proxy in front of the backend, so the link can be cut without either end choosing to. */
export class CutProxy {
  readonly server: Server
  private readonly sockets = new Set<Socket>()
  /** Acks seen going back to the gateway (a cut before the first would cost nothing to skip). */
  acksSeen = 0
  cuts = 0

  constructor (backendPort: number) {
    this.server = createServer((downstream) => {
      const upstream = dial(backendPort, '127.0.0.1')
      for (const socket of [downstream, upstream]) {
        this.sockets.add(socket)
        socket.on('error', () => {})
        socket.on('close', () => {
          this.sockets.delete(socket)
          downstream.destroy()
          upstream.destroy()
        })
      }
      upstream.on('data', (chunk: Buffer) => {
        if (chunk.includes('"action":"ack"')) this.acksSeen++
      })
      downstream.pipe(upstream)
      upstream.pipe(downstream)
    })
  }

  async listen (): Promise<number> {
    this.server.listen(0, '127.0.0.1')
    await once(this.server, 'listening')
    return (this.server.address() as { port: number }).port
  }

  /** Severs every connection through the proxy, mid-stream, without a close frame. */
  cut (): void {
    this.cuts++
    for (const socket of this.sockets) socket.destroy()
  }

  async close (): Promise<void> {
    this.cut()
    await new Promise((resolve) => this.server.close(resolve))
  }
}

/** Players each sending `{"n": 1}`, `{"n": 2}`, ... as fast as a steady tick allows. */
export class Streamers {
  readonly sent = new Map<string, number>()
  private readonly clients: TestClient[] = []
  private readonly paused = new Set<string>()
  private timer?: NodeJS.Timeout

  private constructor (private readonly url: string, private readonly users: readonly string[]) {}

  static async start (url: string, users: readonly string[], perTick = 4, tickMs = 5): Promise<Streamers> {
    const streamers = new Streamers(url, users)
    for (const user of users) {
      streamers.clients.push(await connect(url, { token: tokenFor(user) }))
      streamers.sent.set(user, 0)
    }
    streamers.timer = setInterval(() => streamers.tick(perTick), tickMs)
    return streamers
  }

  /**
   * A player's network blip: stop sending, wait for `delivered` (so no frame
   * dies in the player's own socket), drop the socket without a close frame,
   * wait for `held` (the gateway noticed), reconnect as the same user, go on.
   */
  async blip (user: string, steps: { delivered (): Promise<void>, held (): Promise<void> }): Promise<void> {
    const at = this.users.indexOf(user)
    this.paused.add(user)
    await steps.delivered()
    this.clients[at].ws.terminate()
    await steps.held()
    this.clients[at] = await connect(this.url, { token: tokenFor(user) })
    this.paused.delete(user)
  }

  private tick (perTick: number): void {
    this.clients.forEach((client, i) => {
      const user = this.users[i]
      // a client the gateway cannot keep up with waits instead of buffering without end
      if (this.paused.has(user) || client.ws.readyState !== client.ws.OPEN || client.ws.bufferedAmount > 64 * 1024) return
      let n = this.sent.get(user) ?? 0
      for (let k = 0; k < perTick; k++) client.ws.send(`{"n":${++n}}`)
      this.sent.set(user, n)
    })
  }

  /** Stops sending; the counts in `sent` are final. */
  stop (): void {
    clearInterval(this.timer)
  }

  get total (): number {
    let sum = 0
    for (const n of this.sent.values()) sum += n
    return sum
  }

  async close (): Promise<void> {
    this.stop()
    for (const client of this.clients) client.ws.close()
    await Promise.all(this.clients.map(async (client) => await client.closed))
  }
}

export interface Tally {
  sent: number
  received: number
  lost: number
  /** Within one incarnation, a message not above the one before it from the same player. */
  reordered: number
  /** Receipts beyond the first of the same message, across incarnations. */
  duplicates: number
  /** Duplicates whose seq the gateway had counted as acknowledged (at or below the sync of their link): must be 0. */
  duplicatesOfAcked: number
  /** Duplicates that came with a different seq than the first receipt: must be 0. */
  seqMismatches: number
}

/** Counts what `incarnations` were handed against what the players `sent`. */
export function tally (sent: ReadonlyMap<string, number>, incarnations: readonly Incarnation[]): Tally {
  const firstSeq = new Map<string, number>()
  const result: Tally = { sent: 0, received: 0, lost: 0, reordered: 0, duplicates: 0, duplicatesOfAcked: 0, seqMismatches: 0 }
  for (const n of sent.values()) result.sent += n
  for (const incarnation of incarnations) {
    const last = new Map<string, number>()
    for (const [user, n, seq, syncSeq] of incarnation.messages) {
      result.received++
      if (n <= (last.get(user) ?? 0)) result.reordered++
      last.set(user, n)
      const key = `${user} ${n}`
      const first = firstSeq.get(key)
      if (first === undefined) {
        firstSeq.set(key, seq)
        continue
      }
      result.duplicates++
      if (seq !== first) result.seqMismatches++
      if (seq <= syncSeq) result.duplicatesOfAcked++
    }
  }
  for (const [user, count] of sent) {
    for (let n = 1; n <= count; n++) if (!firstSeq.has(`${user} ${n}`)) result.lost++
  }
  return result
}

/** Whether every message sent so far has reached some incarnation (cheaper than a full tally, for waiting on). */
export function allArrived (sent: ReadonlyMap<string, number>, incarnations: readonly Incarnation[]): boolean {
  const highest = new Map<string, number>()
  for (const incarnation of incarnations) {
    for (const [user, n] of incarnation.messages) if (n > (highest.get(user) ?? 0)) highest.set(user, n)
  }
  return [...sent].every(([user, count]) => (highest.get(user) ?? 0) >= count)
}

/** Resolves once `done()` holds, checked whenever `emitter` says something changed; rejects after `timeoutMs`. */
export async function until (emitter: EventEmitter<{ line: [] }>, done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  if (done()) return
  await new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (!done()) return
      clearTimeout(timer)
      emitter.off('line', check)
      resolve()
    }
    const timer = setTimeout(() => {
      emitter.off('line', check)
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))
    }, timeoutMs)
    emitter.on('line', check)
  })
}

/** CHAOS_SEED from the environment (to replay a run), else a fresh random one. */
export function chaosSeed (env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.CHAOS_SEED
  if (raw === undefined || raw === '') return Math.floor(Math.random() * 2 ** 32)
  const seed = Number(raw)
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new Error(`CHAOS_SEED must be an integer in 0..${2 ** 32 - 1}, not "${raw}"`)
  return seed
}

/**
 * The randomness of a chaos run, from one seed (mulberry32), so that a
 * failing run's pauses can be replayed with CHAOS_SEED=<seed>.
 */
export class Chaos {
  private state: number

  constructor (readonly seed: number) {
    this.state = seed
  }

  /** Uniform in [0, 1). */
  random (): number {
    this.state = (this.state + 0x6d2b79f5) | 0
    let x = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32
  }

  /** A pause between blows, between the given bounds. */
  async pause (minMs: number, maxMs: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, minMs + this.random() * (maxMs - minMs)))
  }

  /** `message`, with the seed that replays this run. */
  say (message: string): string {
    return `${message} (CHAOS_SEED=${this.seed})`
  }
}
