/** The orchestrator's side of the load generator: several worker processes driven as one. */
import { fileURLToPath } from 'node:url'
import { forkChild, type Child } from '../ipc.js'
import { Histogram, type SerializedHistogram } from '../stats.js'
import type { ClientProtocol } from './protocol.js'

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url))

export interface RoundTripResult {
  /** Completed round trips per second, all clients. */
  rate: number
  p50Ms: number
  p99Ms: number
  mismatched: number
  unanswered: number
  closes: number
}

export interface HandshakeResult {
  rate: number
  p50Ms: number
  p99Ms: number
  failed: number
  errors: string[]
}

/** Splits `items` into `n` nearly equal slices. */
export function split<T> (items: readonly T[], n: number): T[][] {
  const out: T[][] = Array.from({ length: n }, () => [])
  items.forEach((item, i) => out[i % n].push(item))
  return out
}

export class LoadPool {
  private constructor (private readonly workers: Child[]) {}

  static async start (size: number): Promise<LoadPool> {
    const workers = await Promise.all(Array.from({ length: size }, async (_, i) => (await forkChild(`load generator ${i}`, WORKER, { quiet: false })).child))
    return new LoadPool(workers)
  }

  get size (): number {
    return this.workers.length
  }

  /** Opens one authenticated connection per user, spread over the workers; throws if any fails. */
  async connect (group: string, protocol: ClientProtocol, url: string, users: readonly string[], options: { concurrency: number, payloadBytes: number }): Promise<void> {
    const slices = split(users, this.workers.length)
    const results = await Promise.all(this.workers.map((w, i) => w.call<{ opened: number, failed: number, errors: string[] }>('connect', {
      group, protocol, url, users: slices[i], concurrency: Math.max(1, Math.ceil(options.concurrency / this.workers.length)), payloadBytes: options.payloadBytes
    })))
    const failed = results.reduce((sum, r) => sum + r.failed, 0)
    if (failed > 0) {
      await this.disconnect(group)
      throw new Error(`${failed} of ${users.length} connections to ${url} failed: ${[...new Set(results.flatMap((r) => r.errors))].join('; ')}`)
    }
  }

  async disconnect (group: string): Promise<void> {
    await Promise.all(this.workers.map((w) => w.call('disconnect', { group })))
  }

  async roundTrip (group: string, warmupMs: number, durationMs: number): Promise<RoundTripResult> {
    const parts = await Promise.all(this.workers.map((w) => w.call<{ completed: number, mismatched: number, unanswered: number, closes: number, windowMs: number, histogram: SerializedHistogram }>('roundTrip', { group, warmupMs, durationMs })))
    const histogram = new Histogram()
    for (const part of parts) histogram.merge(part.histogram)
    const completed = parts.reduce((sum, p) => sum + p.completed, 0)
    return {
      rate: completed / (durationMs / 1000),
      p50Ms: histogram.quantile(0.5) / 1000,
      p99Ms: histogram.quantile(0.99) / 1000,
      mismatched: parts.reduce((sum, p) => sum + p.mismatched, 0),
      unanswered: parts.reduce((sum, p) => sum + p.unanswered, 0),
      closes: parts.reduce((sum, p) => sum + p.closes, 0)
    }
  }

  /** `users` must be more than the window can use; each worker gets its share. */
  async handshake (protocol: ClientProtocol, url: string, users: readonly string[], concurrency: number, durationMs: number): Promise<HandshakeResult> {
    const slices = split(users, this.workers.length)
    const parts = await Promise.all(this.workers.map((w, i) => w.call<{ completed: number, failed: number, exhausted: boolean, elapsedMs: number, errors: string[], histogram: SerializedHistogram }>('handshake', {
      protocol, url, users: slices[i], concurrency: Math.max(1, Math.ceil(concurrency / this.workers.length)), durationMs
    })))
    const histogram = new Histogram()
    for (const part of parts) histogram.merge(part.histogram)
    const completed = parts.reduce((sum, p) => sum + p.completed, 0)
    const elapsed = Math.max(...parts.map((p) => p.elapsedMs))
    if (parts.some((p) => p.exhausted)) process.stderr.write(`bench: handshake run at ${url} used every pre-signed token; raise the token count\n`)
    return {
      rate: completed / (elapsed / 1000),
      p50Ms: histogram.quantile(0.5) / 1000,
      p99Ms: histogram.quantile(0.99) / 1000,
      failed: parts.reduce((sum, p) => sum + p.failed, 0),
      errors: [...new Set(parts.flatMap((p) => p.errors))]
    }
  }

  /** Arms every socket of the group for broadcast `id`; call before it is sent. */
  async armBroadcast (group: string, id: number): Promise<void> {
    await Promise.all(this.workers.map((w) => w.call('armBroadcast', { group, id })))
  }

  /** When the last client got the armed broadcast (wall-clock ms), and how many never or twice did. */
  async collectBroadcast (group: string, timeoutMs: number): Promise<{ lastAt: number, missing: number, duplicates: number }> {
    const parts = await Promise.all(this.workers.map((w) => w.call<{ lastAt: number, missing: number, duplicates: number }>('collectBroadcast', { group, timeoutMs })))
    return {
      lastAt: Math.max(...parts.map((p) => p.lastAt)),
      missing: parts.reduce((sum, p) => sum + p.missing, 0),
      duplicates: parts.reduce((sum, p) => sum + p.duplicates, 0)
    }
  }

  /** One command on every worker, with `args(i)` for worker i; the answers in worker order. */
  async each<T> (cmd: string, args: (i: number) => unknown): Promise<T[]> {
    return await Promise.all(this.workers.map((w, i) => w.call<T>(cmd, args(i))))
  }

  async stop (): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()))
  }
}
