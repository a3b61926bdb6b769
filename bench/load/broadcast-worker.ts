/**
 * One client process of the cluster bench (`npm run bench:cluster`): holds
 * thousands of authenticated idle sockets (a process may hold at most
 * ~20,000 open files), spread round-robin over the gateway nodes it is
 * given, and notes when each of its sockets receives each broadcast.
 *
 * Every target names a distinct loopback source address (127.x.y.z), bound
 * with ws's `localAddress`: ephemeral ports are then counted per source
 * address, so neither the ~28k ports of one address nor ports left in
 * TIME_WAIT by an earlier phase can run out.
 */
import { performance } from 'node:perf_hooks'
import { WebSocket } from 'ws'
import { serveIpc } from '../ipc.js'
import { openSocket } from './open-socket.js'
import { signToken } from '../tokens.js'
import { inLanes } from './lanes.js'

export interface Target { url: string, localAddress?: string }

/** What the sockets of a group received of broadcast `id`. */
interface Receipt { count: number, firstAt: number, lastAt: number, lastAtByTarget: number[] }

interface Group {
  sockets: WebSocket[]
  receipts: Map<number, Receipt>
  /** A broadcast a socket got twice, or one older than the last it got. */
  duplicates: number
  outOfOrder: number
  /** Frames that were not a broadcast. */
  strays: number
  /** Sockets that closed while the group was held, by close code. */
  closes: Record<string, number>
}

const groups = new Map<string, Group>()
const wallNow = (): number => performance.timeOrigin + performance.now()

function open (target: Target, token: string): Promise<WebSocket> {
  return openSocket(target.url, token, { handshakeTimeout: 30000, ...(target.localAddress ? { localAddress: target.localAddress } : {}) })
}

/** Counts a broadcast's arrival on one socket (connected to targets[target]), once per broadcast id. */
function watch (entry: Group, ws: WebSocket, target: number, targets: number): void {
  let last = -1
  ws.on('message', (data: Buffer) => {
    const at = wallNow()
    let id: unknown
    try {
      id = (JSON.parse(data.toString()) as { b?: unknown }).b
    } catch {}
    if (typeof id !== 'number') {
      entry.strays++
      return
    }
    if (id === last) {
      entry.duplicates++
      return
    }
    if (id < last) {
      entry.outOfOrder++
      return
    }
    last = id
    const receipt = entry.receipts.get(id)
    if (receipt) {
      receipt.count++
      receipt.lastAt = at
      receipt.lastAtByTarget[target] = at
    } else {
      const lastAtByTarget = Array.from({ length: targets }, () => NaN)
      lastAtByTarget[target] = at
      entry.receipts.set(id, { count: 1, firstAt: at, lastAt: at, lastAtByTarget })
    }
  })
  ws.on('close', (code: number) => {
    if (!entry.sockets.includes(ws)) return
    entry.closes[code] = (entry.closes[code] ?? 0) + 1
  })
}

interface ConnectArgs { group: string, targets: Target[], users: string[], concurrency: number }

/**
 * Opens one connection per user, socket i to targets[i % targets.length],
 * `concurrency` handshakes at a time; tokens are signed before the clock starts.
 */
async function connect ({ group, targets, users, concurrency }: ConnectArgs): Promise<{ opened: number, failed: number, errors: string[], elapsedMs: number, perTarget: number[] }> {
  const tokens = users.map((user) => signToken(user))
  const entry: Group = groups.get(group) ?? { sockets: [], receipts: new Map(), duplicates: 0, outOfOrder: 0, strays: 0, closes: {} }
  groups.set(group, entry)
  const perTarget = targets.map(() => 0)
  const start = performance.now()
  const { failed, errors } = await inLanes(users.length, concurrency, async (i) => {
    const t = i % targets.length
    const ws = await open(targets[t], tokens[i])
    watch(entry, ws, t, targets.length)
    entry.sockets.push(ws)
    perTarget[t]++
  }, (err, i) => {
    const target = targets[i % targets.length]
    return `${err.message} (${target.url}${target.localAddress ? ` from ${target.localAddress}` : ''})`
  })
  return {
    opened: users.length - failed,
    failed,
    errors: [...errors].slice(0, 5).map(([message, n]) => `${n}× ${message}`),
    elapsedMs: performance.now() - start,
    perTarget
  }
}

interface WaitArgs { group: string, id: number, timeoutMs: number }

/** Resolves once every socket of the group has broadcast `id`, or at the timeout, with what arrived. */
async function waitBroadcast ({ group, id, timeoutMs }: WaitArgs): Promise<{ sockets: number, open: number, received: number, firstAt: number, lastAt: number, lastAtByTarget: number[], duplicates: number, outOfOrder: number, strays: number }> {
  const entry = groups.get(group)
  if (!entry) throw new Error(`no group ${group}`)
  const until = performance.now() + timeoutMs
  while (performance.now() < until && (entry.receipts.get(id)?.count ?? 0) < entry.sockets.length) {
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  const receipt = entry.receipts.get(id)
  return {
    sockets: entry.sockets.length,
    open: entry.sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length,
    received: receipt?.count ?? 0,
    firstAt: receipt?.firstAt ?? NaN,
    lastAt: receipt?.lastAt ?? NaN,
    lastAtByTarget: receipt?.lastAtByTarget ?? [],
    duplicates: entry.duplicates,
    outOfOrder: entry.outOfOrder,
    strays: entry.strays
  }
}

function status ({ group }: { group: string }): { sockets: number, open: number, closes: Record<string, number>, duplicates: number, outOfOrder: number, strays: number } {
  const entry = groups.get(group)
  if (!entry) return { sockets: 0, open: 0, closes: {}, duplicates: 0, outOfOrder: 0, strays: 0 }
  return {
    sockets: entry.sockets.length,
    open: entry.sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length,
    closes: { ...entry.closes },
    duplicates: entry.duplicates,
    outOfOrder: entry.outOfOrder,
    strays: entry.strays
  }
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

serveIpc({
  connect,
  waitBroadcast,
  status,
  disconnect,
  stop: () => {
    for (const entry of groups.values()) for (const ws of entry.sockets) ws.terminate()
    setImmediate(() => process.exit(0))
    return {}
  }
})
