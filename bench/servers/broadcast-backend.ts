/**
 * The cluster bench's backend (`npm run bench:cluster`): every gateway node
 * dials it. It counts `open`/`close` events per link (a link is named by the
 * node id in its `hello`), so the orchestrator knows when every client is
 * registered, and on `broadcast` sends ONE `{"action":"send","all":true}`
 * down the named node's link, stamped with its send time.
 */
import { performance } from 'node:perf_hooks'
import type { WebSocket } from 'ws'
import { serveIpc } from '../ipc.js'
import { serverHandlers } from './common.js'
import { linkServer } from './link-server.js'

interface Event { event: string, gateway?: string, user?: string, users?: unknown[] }

/** What one link (one gateway node) has told this backend. */
interface Link {
  node: string
  socket?: WebSocket
  opens: number
  closes: number
  /** Users in the last `sync`, and how many times the link said `hello` (1 unless it reconnected). */
  synced: number
  hellos: number
  frames: number
  badFrames: number
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one machine. */
const wallNow = (): number => performance.timeOrigin + performance.now()

const wss = await linkServer(256 * 1024 * 1024)
const links = new Map<string, Link>()

wss.on('connection', (socket) => {
  let link: Link | undefined
  socket.on('error', () => {})
  socket.on('close', () => { if (link?.socket === socket) link.socket = undefined })
  socket.on('message', (data: Buffer) => {
    let parsed: Event | Event[]
    try {
      parsed = JSON.parse(data.toString()) as Event | Event[]
    } catch {
      if (link) link.badFrames++
      return
    }
    for (const event of Array.isArray(parsed) ? parsed : [parsed]) {
      if (event.event === 'hello' && typeof event.gateway === 'string') {
        link = links.get(event.gateway) ?? { node: event.gateway, opens: 0, closes: 0, synced: 0, hellos: 0, frames: 0, badFrames: 0 }
        links.set(event.gateway, link)
        link.socket = socket
        link.hellos++
      }
      if (!link) continue
      if (event.event === 'open') link.opens++
      else if (event.event === 'close') link.closes++
      else if (event.event === 'sync') link.synced = Array.isArray(event.users) ? event.users.length : 0
    }
    if (link) link.frames++
  })
})

serveIpc({
  ...serverHandlers(async () => {
    for (const client of wss.clients) client.terminate()
    await new Promise<void>((resolve) => wss.close(() => resolve()))
  }),
  /** Per node: events seen, and whether its link is up. */
  stats: () => [...links.values()].map(({ socket, ...rest }) => ({ ...rest, up: socket !== undefined })),
  /** One `send` to `all` down `node`'s link; `sentAt` is taken just before the frame is written. */
  broadcast: ({ node, id }: { node: string, id: number }) => {
    const socket = links.get(node)?.socket
    if (!socket) throw new Error(`no link from node ${node}`)
    const sentAt = wallNow()
    socket.send(JSON.stringify({ action: 'send', all: true, data: { b: id, t: sentAt } }))
    return { sentAt }
  }
}, { port: (wss.address() as { port: number }).port })
