/**
 * The load generator's side of the reconnect storm: clients that keep the
 * token they connected with, see their server go away, and all reconnect at
 * once. A refusal other than 503 (capacity) is a refusal; a failed connect
 * (the port not yet open, a full accept queue) is retried after 20-100 ms,
 * as a client library's backoff would.
 */
import { performance } from 'node:perf_hooks'
import { WebSocket } from 'ws'
import { signToken } from '../tokens.js'
import { openSocket } from './open-socket.js'
import { inLanes } from './lanes.js'

interface StormGroup {
  url: string
  tokens: string[]
  sockets: Array<WebSocket | undefined>
  /** Close codes seen since the group was connected, by code. */
  closeCodes: Record<number, number>
  open: number
  allClosed?: () => void
}

const wallNow = (): number => performance.timeOrigin + performance.now()
const groups = new Map<string, StormGroup>()

function watch (group: StormGroup, i: number, ws: WebSocket): void {
  group.sockets[i] = ws
  group.open++
  ws.once('close', (code: number) => {
    group.closeCodes[code] = (group.closeCodes[code] ?? 0) + 1
    group.sockets[i] = undefined
    if (--group.open === 0) group.allClosed?.()
  })
}

async function stormConnect ({ group, url, users, concurrency }: { group: string, url: string, users: string[], concurrency: number }): Promise<{ failed: number, errors: string[] }> {
  const entry: StormGroup = { url, tokens: users.map((user) => signToken(user)), sockets: [], closeCodes: {}, open: 0 }
  groups.set(group, entry)
  const { failed, errors } = await inLanes(users.length, concurrency, async (i) => { watch(entry, i, await openSocket(url, entry.tokens[i])) })
  return { failed, errors: [...errors.keys()].slice(0, 5) }
}

/** Drops every client (the network's doing, not the server's). */
function stormDrop ({ group }: { group: string }): { dropped: number } {
  const entry = groups.get(group)
  if (!entry) throw new Error(`no storm group ${group}`)
  let dropped = 0
  for (const ws of entry.sockets) {
    if (ws) {
      ws.terminate()
      dropped++
    }
  }
  return { dropped }
}

/** Resolves once every client of the group is closed; returns the close codes since it connected. */
async function stormClosed ({ group, timeoutMs }: { group: string, timeoutMs: number }): Promise<{ stillOpen: number, closeCodes: Record<number, number> }> {
  const entry = groups.get(group)
  if (!entry) throw new Error(`no storm group ${group}`)
  if (entry.open > 0) {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      new Promise<void>((resolve) => { entry.allClosed = resolve }),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })
    ])
    clearTimeout(timer)
  }
  const closeCodes = entry.closeCodes
  entry.closeCodes = {}
  return { stillOpen: entry.open, closeCodes }
}

/** Every client reconnects at once with its token; resolves when all are back or `deadlineMs` has passed. */
async function stormReconnect ({ group, deadlineMs }: { group: string, deadlineMs: number }): Promise<{ back: number, lastOpenAt: number, retries: number, refused: Record<string, number>, errors: string[] }> {
  const entry = groups.get(group)
  if (!entry) throw new Error(`no storm group ${group}`)
  const until = performance.now() + deadlineMs
  let lastOpenAt = 0
  let retries = 0
  const refused: Record<string, number> = {}
  const errors = new Set<string>()
  const attempt = async (i: number): Promise<void> => {
    for (;;) {
      try {
        watch(entry, i, await openSocket(entry.url, entry.tokens[i]))
        lastOpenAt = wallNow()
        return
      } catch (err) {
        const message = (err as Error).message
        const status = /^HTTP (\d+)$/.exec(message)?.[1]
        if (status !== undefined && status !== '503') {
          refused[status] = (refused[status] ?? 0) + 1
          return
        }
        errors.add(message)
        if (performance.now() >= until) return
        retries++
        await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 80))
      }
    }
  }
  await Promise.all(entry.tokens.map((_, i) => attempt(i)))
  return { back: entry.open, lastOpenAt, retries, refused, errors: [...errors].slice(0, 5) }
}

async function stormDisconnect ({ group }: { group: string }): Promise<void> {
  const entry = groups.get(group)
  if (!entry) return
  groups.delete(group)
  await Promise.all(entry.sockets.map((ws) => ws && new Promise<void>((resolve) => {
    ws.once('close', () => resolve())
    ws.terminate()
  })))
}

export const stormHandlers = { stormConnect, stormDrop, stormClosed, stormReconnect, stormDisconnect }
