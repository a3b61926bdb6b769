/**
 * How a bench client talks to its contender. `ws`: the echo is the frame as
 * sent. `socketio`: Socket.IO v5 packets over Engine.IO v4 framing, spoken
 * directly over `ws` (what socket.io-client puts on the wire, without its
 * per-message machinery, so the load generator is not what is measured):
 * the server opens with `0{...}`, the client connects to the main namespace
 * with `40` and is in on `40{"sid":...}`; an event is `42["name",data]`; the
 * server pings with `2` and the client must answer `3`, or it is dropped
 * after pingInterval + pingTimeout.
 */
import { WebSocket } from 'ws'
import { openSocket } from './open-socket.js'

export type ClientProtocol = 'ws' | 'socketio'

/** The text a client sends for `payload`, which is also exactly what comes back. */
export function echoFrame (protocol: ClientProtocol, payload: string): string {
  return protocol === 'socketio' ? `42["echo",${payload}]` : payload
}

/** An Engine.IO ping: answered on the socket (by openClient), never an echo. */
export function isPing (protocol: ClientProtocol, data: Buffer): boolean {
  return protocol === 'socketio' && data.length === 1 && data[0] === 0x32
}

/** An open client: for socketio, once the server has acknowledged the namespace connect. */
export function openClient (protocol: ClientProtocol, url: string, token: string): Promise<WebSocket> {
  return protocol === 'socketio' ? openSocketIo(url, token) : openSocket(url, token)
}

function openSocketIo (url: string, token: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false })
    let connected = false
    const fail = (err: Error): void => {
      ws.removeAllListeners()
      ws.on('error', () => {})
      ws.terminate()
      reject(err)
    }
    // attached before `open`: the server's open packet may arrive in the same read as the upgrade response
    ws.on('message', (data: Buffer) => {
      if (isPing('socketio', data)) {
        ws.send('3')
        return
      }
      if (connected) return
      const text = data.toString()
      if (text.startsWith('0{')) {
        ws.send('40')
      } else if (text.startsWith('40')) {
        connected = true
        ws.removeAllListeners('error')
        ws.removeAllListeners('unexpected-response')
        ws.off('close', onClose)
        ws.on('error', () => {})
        resolve(ws)
      } else {
        fail(new Error(`socket.io connect refused: ${text.slice(0, 200)}`))
      }
    })
    ws.once('error', fail)
    const onClose = (code: number): void => fail(new Error(`closed before the socket.io connect (${code})`))
    ws.once('close', onClose)
    ws.once('unexpected-response', (_req, res) => fail(new Error(`HTTP ${res.statusCode}`)))
  })
}
