/**
 * The socket.io contender (issue 15): a socket.io 4.8 echo server, websocket
 * transport only (no long-polling, no upgrade), as a game team would write
 * it: every `echo` event goes back to the same socket as an `echo` event;
 * `broadcast` is one `io.emit`. Served under PATH (`/bench/`), so stray dials
 * to other paths are not counted as clients.
 */
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { createServer } from 'node:http'
import { Server } from 'socket.io'
import { PATH } from '../endpoints.js'
import { serveIpc } from '../ipc.js'
import { serverHandlers } from './common.js'

const http = createServer()
const io = new Server(http, { path: PATH, transports: ['websocket'], serveClient: false, perMessageDeflate: false, maxHttpBufferSize: 65536 })
io.on('connection', (socket) => {
  socket.on('echo', (data: unknown) => socket.emit('echo', data))
})
http.listen({ host: '127.0.0.1', port: 0, backlog: 4096 })
await once(http, 'listening')

serveIpc({
  ...serverHandlers(async () => {
    io.disconnectSockets(true)
    await new Promise<void>((resolve) => io.close(() => resolve()))
  }),
  stats: () => ({ clients: io.engine.clientsCount }),
  broadcast: ({ id }: { id: number }) => {
    const sentAt = performance.timeOrigin + performance.now()
    io.emit('b', { b: id, t: sentAt })
    return { sentAt }
  }
}, { port: (http.address() as { port: number }).port })
