/**
 * One load-generator process. The orchestrator splits clients across
 * several of these (a process may hold at most ~20,000 open files) and
 * merges what they measure. Tokens are signed here before any clock starts.
 */
import { performance } from 'node:perf_hooks'
import { WebSocket } from 'ws'
import { serveIpc } from '../ipc.js'
import { echoFrame, isPing, openClient, type ClientProtocol } from './protocol.js'
import { Histogram } from '../stats.js'
import { signToken } from '../tokens.js'
import { stormHandlers } from './storm-clients.js'
import { inLanes } from './lanes.js'

/** A set of open client connections, named by the orchestrator. */
interface Group {
  protocol: ClientProtocol
  sockets: WebSocket[]
  /** Per socket, the frame it sends, and expects back byte for byte. */
  payloads: string[]
  unexpectedCloses: number
  broadcast?: BroadcastWatch
}

/** One broadcast being watched for on every socket of a group. */
interface BroadcastWatch {
  marker: string
  received: Uint8Array
  missing: number
  duplicates: number
  /** Wall-clock ms (comparable across processes) of the last socket's first copy. */
  lastAt: number
  done: Promise<void>
  cleanups: Array<() => void>
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one machine. */
const wallNow = (): number => performance.timeOrigin + performance.now()

const groups = new Map<string, Group>()

/** A compact JSON text of exactly `size` bytes that round-trips through JSON.parse/stringify unchanged. */
function payload (id: string, size: number): string {
  const head = `{"c":${JSON.stringify(id)},"p":"`
  const fill = Math.max(0, size - head.length - 2)
  return `${head}${'x'.repeat(fill)}"}`
}

interface ConnectArgs { group: string, protocol: ClientProtocol, url: string, users: string[], concurrency: number, payloadBytes: number }

/** Opens one connection per user, `concurrency` handshakes at a time. */
async function connect ({ group, protocol, url, users, concurrency, payloadBytes }: ConnectArgs): Promise<{ opened: number, failed: number, errors: string[] }> {
  const tokens = users.map((user) => signToken(user))
  const entry = groups.get(group) ?? { protocol, sockets: [], payloads: [], unexpectedCloses: 0 }
  groups.set(group, entry)
  const { failed, errors } = await inLanes(users.length, concurrency, async (i) => {
    const ws = await openClient(protocol, url, tokens[i])
    ws.on('close', () => { if (entry.sockets.includes(ws)) entry.unexpectedCloses++ })
    entry.sockets.push(ws)
    entry.payloads.push(echoFrame(protocol, payload(users[i], payloadBytes)))
  })
  return { opened: users.length - failed, failed, errors: [...errors.keys()].slice(0, 5) }
}

async function disconnect ({ group }: { group: string }): Promise<{ closed: number }> {
  const entry = groups.get(group)
  if (!entry) return { closed: 0 }
  groups.delete(group)
  const sockets = entry.sockets
  entry.sockets = []
  await Promise.all(sockets.map((ws) => new Promise<void>((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve()
    ws.once('close', () => resolve())
    ws.terminate()
  })))
  return { closed: sockets.length }
}

interface RoundTripArgs { group: string, warmupMs: number, durationMs: number }

/**
 * Every connection of the group keeps one message in flight: it sends, waits
 * for the echo, checks it, sends again. Only round trips that complete inside
 * the measuring window (after the warm-up) count.
 */
async function roundTrip ({ group, warmupMs, durationMs }: RoundTripArgs): Promise<{ completed: number, mismatched: number, unanswered: number, closes: number, windowMs: number, histogram: Array<[number, number]> }> {
  const entry = groups.get(group)
  if (!entry) throw new Error(`no group ${group}`)
  const histogram = new Histogram()
  const start = performance.now()
  const from = start + warmupMs
  const until = from + durationMs
  let completed = 0
  let mismatched = 0
  let inFlight = 0
  let stopping = false
  const closesBefore = entry.unexpectedCloses
  let settle: () => void = () => {}
  const settled = new Promise<void>((resolve) => { settle = resolve })
  const cleanups: Array<() => void> = []

  entry.sockets.forEach((ws, i) => {
    const text = entry.payloads[i]
    let sentAt = 0
    const fire = (): void => {
      sentAt = performance.now()
      inFlight++
      ws.send(text)
    }
    const onMessage = (data: Buffer): void => {
      if (isPing(entry.protocol, data)) return
      const now = performance.now()
      inFlight--
      if (data.length !== text.length || data.toString() !== text) mismatched++
      if (sentAt >= from && now <= until) {
        completed++
        histogram.record((now - sentAt) * 1000)
      }
      if (!stopping && now < until) fire()
      else if (inFlight === 0) settle()
    }
    ws.on('message', onMessage)
    cleanups.push(() => ws.off('message', onMessage))
    if (ws.readyState === WebSocket.OPEN) fire()
  })

  await new Promise((resolve) => setTimeout(resolve, warmupMs + durationMs))
  stopping = true
  if (inFlight > 0) await Promise.race([settled, new Promise((resolve) => setTimeout(resolve, 5000))])
  for (const cleanup of cleanups) cleanup()
  return {
    completed,
    mismatched,
    unanswered: inFlight,
    closes: entry.unexpectedCloses - closesBefore,
    windowMs: durationMs,
    histogram: histogram.toJSON()
  }
}

/**
 * Arms every socket of the group for broadcast `id`, before it is sent. The
 * servers send `{"b":id,"t":sentAt}` (socketio inside `42["b",…]`), so the
 * marker is found in any contender's frame without parsing it.
 */
function armBroadcast ({ group, id }: { group: string, id: number }): { armed: number } {
  const entry = groups.get(group)
  if (!entry) throw new Error(`no group ${group}`)
  let finish: () => void = () => {}
  const watch: BroadcastWatch = {
    marker: `{"b":${id},"t":`,
    received: new Uint8Array(entry.sockets.length),
    missing: entry.sockets.length,
    duplicates: 0,
    lastAt: 0,
    done: new Promise<void>((resolve) => { finish = resolve }),
    cleanups: []
  }
  if (watch.missing === 0) finish()
  entry.sockets.forEach((ws, i) => {
    const onMessage = (data: Buffer): void => {
      if (!data.toString().includes(watch.marker)) return
      if (watch.received[i] === 1) {
        watch.duplicates++
        return
      }
      watch.received[i] = 1
      watch.lastAt = wallNow()
      if (--watch.missing === 0) finish()
    }
    ws.on('message', onMessage)
    watch.cleanups.push(() => ws.off('message', onMessage))
  })
  entry.broadcast = watch
  return { armed: entry.sockets.length }
}

/** Waits until every socket has the armed broadcast (or `timeoutMs`), then disarms. */
async function collectBroadcast ({ group, timeoutMs }: { group: string, timeoutMs: number }): Promise<{ missing: number, duplicates: number, lastAt: number }> {
  const watch = groups.get(group)?.broadcast
  if (!watch) throw new Error(`no broadcast armed on ${group}`)
  let timer: NodeJS.Timeout | undefined
  await Promise.race([watch.done, new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })])
  clearTimeout(timer)
  for (const cleanup of watch.cleanups) cleanup()
  ;(groups.get(group) as Group).broadcast = undefined
  return { missing: watch.missing, duplicates: watch.duplicates, lastAt: watch.lastAt }
}

interface HandshakeArgs { protocol: ClientProtocol, url: string, users: string[], concurrency: number, durationMs: number }

/**
 * Handshake rate: `concurrency` lanes each open a connection, drop it as soon
 * as it is open, and open the next, until the window ends. Tokens (one user
 * each, so no duplicate policy kicks in) are signed before the clock starts.
 */
async function handshake ({ protocol, url, users, concurrency, durationMs }: HandshakeArgs): Promise<{ completed: number, failed: number, exhausted: boolean, elapsedMs: number, errors: string[], histogram: Array<[number, number]> }> {
  const tokens = users.map((user) => signToken(user))
  const histogram = new Histogram()
  let next = 0
  let completed = 0
  let failed = 0
  const errors = new Set<string>()
  const start = performance.now()
  const until = start + durationMs
  const lane = async (): Promise<void> => {
    while (performance.now() < until && next < tokens.length) {
      const token = tokens[next++]
      const t0 = performance.now()
      try {
        const ws = await openClient(protocol, url, token)
        completed++
        histogram.record((performance.now() - t0) * 1000)
        ws.terminate()
      } catch (err) {
        failed++
        errors.add((err as Error).message)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  return { completed, failed, exhausted: next >= tokens.length, elapsedMs: performance.now() - start, errors: [...errors].slice(0, 5), histogram: histogram.toJSON() }
}

serveIpc({
  ...stormHandlers,
  connect,
  disconnect,
  roundTrip,
  handshake,
  armBroadcast,
  collectBroadcast,
  count: ({ group }: { group: string }) => groups.get(group)?.sockets.length ?? 0,
  stop: () => {
    for (const entry of groups.values()) for (const ws of entry.sockets) ws.terminate()
    setImmediate(() => process.exit(0))
    return {}
  }
})
