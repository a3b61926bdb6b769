/**
 * Client process for bench/pools.ts: players of `/game/:matchId`, two per
 * match, in named groups. A group either plays round trips (one message in
 * flight per client, each echo checked) or streams numbered messages at a
 * fixed rate while a member is killed, counting which came back.
 */
import { performance } from 'node:perf_hooks'
import type { WebSocket } from 'ws'
import { serveIpc } from '../ipc.js'
import { Histogram } from '../stats.js'
import { signToken } from '../tokens.js'
import { inLanes } from './lanes.js'
import { openSocket } from './open-socket.js'

interface Player {
  user: string
  ws: WebSocket
  /** Round trips: the echo awaited now. */
  waiting?: { text: string, resolve (): void, reject (err: Error): void }
  /** Streaming: the next number to send, and the numbers echoed. */
  nextSeq: number
  echoed: Set<number>
}

interface Group { players: Player[], closes: Record<string, number>, strays: number, mismatches: number, stream?: NodeJS.Timeout }

const groups = new Map<string, Group>()
const PAD = 'x'.repeat(40)

function group (name: string): Group {
  const g = groups.get(name)
  if (!g) throw new Error(`no client group ${name}`)
  return g
}

function attach (g: Group, player: Player): void {
  player.ws.on('message', (data: Buffer) => {
    const text = data.toString()
    if (player.waiting) {
      const waiting = player.waiting
      player.waiting = undefined
      if (text === waiting.text) waiting.resolve()
      else {
        g.mismatches++
        waiting.reject(new Error('echo differs from the frame sent'))
      }
      return
    }
    const seq = (JSON.parse(text) as { s?: unknown }).s
    if (typeof seq === 'number') player.echoed.add(seq)
    else g.strays++
  })
  player.ws.on('close', (code: number) => {
    g.closes[code] = (g.closes[code] ?? 0) + 1
    player.waiting?.reject(new Error(`closed with ${code}`))
    player.waiting = undefined
  })
}

serveIpc({
  /** Opens `users.length` players; player i joins `${base}/${matches[i]}`. */
  connect: async ({ name, base, users, matches, concurrency }: { name: string, base: string, users: string[], matches: string[], concurrency: number }) => {
    const g = groups.get(name) ?? { players: [], closes: {}, strays: 0, mismatches: 0 }
    groups.set(name, g)
    const tokens = users.map(signToken)
    const started = performance.now()
    const { failed, errors } = await inLanes(users.length, concurrency, async (i) => {
      const ws = await openSocket(`${base}/${encodeURIComponent(matches[i])}`, tokens[i])
      const player: Player = { user: users[i], ws, nextSeq: 0, echoed: new Set() }
      attach(g, player)
      g.players.push(player)
    })
    return { opened: users.length - failed, failed, errors: [...errors].map(([m, n]) => `${n}× ${m}`), elapsedMs: performance.now() - started }
  },

  /** Every player sends, waits for the echo, and sends again, for `warmupMs + durationMs`; only the last `durationMs` is counted. */
  roundTrips: async ({ name, warmupMs, durationMs }: { name: string, warmupMs: number, durationMs: number }) => {
    const g = group(name)
    const histogram = new Histogram()
    const start = performance.now()
    const countFrom = start + warmupMs
    const end = countFrom + durationMs
    let failures = 0
    let n = 0
    await Promise.all(g.players.map(async (player) => {
      while (performance.now() < end) {
        const text = JSON.stringify({ n: n++, p: PAD })
        const sent = performance.now()
        try {
          await new Promise<void>((resolve, reject) => {
            player.waiting = { text, resolve, reject }
            player.ws.send(text)
          })
        } catch {
          failures++
          return
        }
        const done = performance.now()
        if (sent >= countFrom && done <= end) histogram.record((done - sent) * 1000)
      }
    }))
    return { count: histogram.count, elapsedMs: durationMs, histogram: histogram.toJSON(), failures, mismatches: g.mismatches }
  },

  /** Every player sends `{"s": n}` every `intervalMs` until `stopStream`. */
  startStream: ({ name, intervalMs }: { name: string, intervalMs: number }) => {
    const g = group(name)
    g.stream = setInterval(() => {
      for (const player of g.players) {
        if (player.ws.readyState !== player.ws.OPEN) continue
        player.ws.send(JSON.stringify({ s: player.nextSeq++ }))
      }
    }, intervalMs)
    return {}
  },

  stopStream: ({ name }: { name: string }) => {
    const g = group(name)
    clearInterval(g.stream)
    g.stream = undefined
    return {}
  },

  /** What came back of the stream: messages sent, echoed, and the players still missing echoes. */
  streamStatus: ({ name }: { name: string }) => {
    const g = group(name)
    let sent = 0
    let echoed = 0
    const missingBy: string[] = []
    for (const p of g.players) {
      sent += p.nextSeq
      echoed += p.echoed.size
      if (p.echoed.size < p.nextSeq) missingBy.push(p.user)
    }
    return { sent, echoed, missing: sent - echoed, missingBy: missingBy.slice(0, 10), closes: g.closes, strays: g.strays }
  },

  status: ({ name }: { name: string }) => {
    const g = group(name)
    return { players: g.players.length, closes: g.closes, strays: g.strays, mismatches: g.mismatches }
  },

  disconnect: async ({ name }: { name: string }) => {
    const g = groups.get(name)
    if (!g) return {}
    clearInterval(g.stream)
    groups.delete(name)
    for (const p of g.players) {
      p.ws.removeAllListeners('close')
      p.ws.terminate()
    }
    return {}
  },

  stop: () => {
    setImmediate(() => process.exit(0))
    return {}
  }
})
