/** The WebSocket server a bench backend listens on for the gateway's link: loopback, a free port, only LINK_PATH, no compression. */
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { WebSocketServer } from 'ws'
import { LINK_PATH } from '../endpoints.js'
import { serveIpc } from '../ipc.js'
import { serverHandlers } from './common.js'

export async function linkServer (maxPayload: number): Promise<WebSocketServer> {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: false,
    maxPayload,
    verifyClient: (info: { req: { url?: string } }) => info.req.url === LINK_PATH
  })
  await once(wss, 'listening')
  return wss
}

/**
 * An echo backend's answers to the orchestrator: stop, its counts, and
 * `broadcast`, one frame to every client (`broadcastFrame`) down the
 * gateway's link, stamped with when it was sent.
 */
export function serveLinkBackend (wss: WebSocketServer, counts: Record<string, number>, broadcastFrame: (id: number, sentAt: number) => string | Buffer): void {
  serveIpc({
    ...serverHandlers(async () => {
      for (const client of wss.clients) client.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
    }),
    stats: () => ({ links: wss.clients.size, ...counts }),
    broadcast: ({ id }: { id: number }) => {
      const [link] = wss.clients
      if (!link) throw new Error('no gateway link')
      const sentAt = performance.timeOrigin + performance.now()
      link.send(broadcastFrame(id, sentAt))
      return { sentAt }
    }
  }, { port: (wss.address() as { port: number }).port })
}
