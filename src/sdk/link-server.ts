/**
 * The listening side of the backend: an HTTP server that upgrades only
 * requests carrying the gateway's bearer token. Everything else gets a plain
 * HTTP answer (401, or 426 for a non-WebSocket request) and never a socket.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { once } from 'node:events'
import { WebSocketServer, type WebSocket } from 'ws'
import { bearerMatches } from './bearer.js'

export interface LinkServerOptions {
  /** Required bearer token; when undefined every upgrade is accepted. */
  token?: string
  maxPayloadBytes: number
  onLink (socket: WebSocket): void
  onRefused (request: IncomingMessage): void
}

export class LinkServer {
  private readonly http: Server
  private readonly wss: WebSocketServer

  constructor (private readonly options: LinkServerOptions) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayloadBytes, perMessageDeflate: false })
    this.http = createServer((_request, response) => {
      response.writeHead(426, { 'content-type': 'text/plain', connection: 'close' }).end('this is a Gatehouse backend: the gateway connects here over WebSocket\n')
    })
    this.http.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(request, socket, head))
    // a peer that drops mid-request must not crash the process
    this.http.on('clientError', (_err, socket: Duplex) => socket.destroy())
  }

  async listen (port: number, host: string): Promise<number> {
    this.http.listen(port, host)
    await once(this.http, 'listening')
    return (this.http.address() as { port: number }).port
  }

  async close (): Promise<void> {
    if (!this.http.listening) return
    this.http.closeAllConnections()
    await new Promise<void>((resolve) => this.http.close(() => resolve()))
  }

  private upgrade (request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy())
    const { token } = this.options
    if (token !== undefined && !bearerMatches(request.headers.authorization, token)) {
      this.options.onRefused(request)
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nUnauthorized\n')
      return
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.options.onLink(ws))
  }
}
