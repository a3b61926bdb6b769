/** The WebSocket server a bench backend listens on for the gateway's link: loopback, a free port, only LINK_PATH, no compression. */
import { once } from 'node:events'
import { WebSocketServer } from 'ws'
import { LINK_PATH } from '../endpoints.js'

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
