/** One authenticated bench client: resolves once open, rejects (and lets go of the socket) on a refused or failed handshake. */
import { WebSocket, type ClientOptions } from 'ws'

export function openSocket (url: string, token: string, options: ClientOptions = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false, ...options })
    const fail = (err: Error): void => {
      ws.removeAllListeners()
      ws.on('error', () => {})
      ws.terminate()
      reject(err)
    }
    ws.once('open', () => {
      ws.removeAllListeners('error')
      ws.removeAllListeners('unexpected-response')
      ws.on('error', () => {})
      resolve(ws)
    })
    ws.once('error', fail)
    ws.once('unexpected-response', (_req, res) => fail(new Error(`HTTP ${res.statusCode}`)))
  })
}
