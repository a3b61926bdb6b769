/**
 * The bench's plain WebSocket echo server: the *direct* contender, and the
 * upstream behind nginx. Every frame goes back as it came, on the same socket;
 * `broadcast` is the plain loop a ws server would write: one send per client.
 */
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { WebSocketServer } from 'ws'
import { PATH } from '../endpoints.js'
import { serveIpc } from '../ipc.js'
import { serverHandlers } from './common.js'

const wss = new WebSocketServer({
  host: '127.0.0.1',
  // a fixed port (argv) lets the reconnect storm restart it where its clients were
  port: Number(process.argv[2] ?? 0),
  perMessageDeflate: false,
  maxPayload: 65536,
  backlog: 4096,
  verifyClient: (info: { req: { url?: string } }) => info.req.url?.startsWith(PATH) === true
})
await once(wss, 'listening')
wss.on('connection', (socket) => {
  socket.on('error', () => {})
  socket.on('message', (data: Buffer, isBinary: boolean) => socket.send(data, { binary: isBinary }))
})

// a restart in the reconnect storm: what a ws server going down for a deploy does (1001, going away)
process.once('SIGTERM', () => {
  for (const client of wss.clients) client.close(1001, 'restarting')
  wss.close(() => process.exit(0))
})

serveIpc({
  ...serverHandlers(async () => {
    for (const client of wss.clients) client.terminate()
    await new Promise<void>((resolve) => wss.close(() => resolve()))
  }),
  stats: () => ({ clients: wss.clients.size }),
  broadcast: ({ id }: { id: number }) => {
    const sentAt = performance.timeOrigin + performance.now()
    const text = JSON.stringify({ b: id, t: sentAt })
    for (const client of wss.clients) client.send(text)
    return { sentAt }
  }
}, { port: (wss.address() as { port: number }).port })
