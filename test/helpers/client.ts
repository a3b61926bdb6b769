/** Player clients for tests: real `ws` sockets, or the HTTP status of a refused handshake. */
import { WebSocket, type ClientOptions } from 'ws'
import { Inbox } from './waiter.js'

export interface TestClient {
  ws: WebSocket
  /** Frames received, text as strings, binary as Buffers. */
  messages: Inbox<string | Buffer>
  /** Resolves with the close code and reason once the socket is closed. */
  closed: Promise<{ code: number, reason: string }>
  next (timeoutMs?: number): Promise<string | Buffer>
}

export type TokenVia = 'header' | 'subprotocol' | 'query'

export interface ConnectOptions {
  token?: string
  via?: TokenVia
  origin?: string
  protocols?: string[]
  ws?: ClientOptions
}

function prepare (url: string, options: ConnectOptions): WebSocket {
  const { token, via = 'header' } = options
  const headers: Record<string, string> = {}
  let target = url
  let protocols = options.protocols
  if (token !== undefined) {
    if (via === 'header') headers.authorization = `Bearer ${token}`
    if (via === 'query') target += `${url.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(token)}`
    if (via === 'subprotocol') protocols = ['bearer', token]
  }
  if (options.origin) headers.origin = options.origin
  return new WebSocket(target, protocols, { headers, ...options.ws })
}

/** Opens a client; rejects if the handshake is refused. */
export async function connect (url: string, options: ConnectOptions = {}): Promise<TestClient> {
  const ws = prepare(url, options)
  const messages = new Inbox<string | Buffer>()
  ws.on('message', (data: Buffer, isBinary) => messages.push(isBinary ? data : data.toString()))
  const closed = new Promise<{ code: number, reason: string }>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
    ws.once('unexpected-response', (req, res) => {
      req.destroy()
      reject(new Error(`handshake refused with HTTP ${res.statusCode}`))
    })
  })
  ws.on('error', () => {})
  return { ws, messages, closed, next: (timeoutMs) => messages.next(undefined, timeoutMs, 'a message') }
}

/** Attempts a handshake that must be refused; resolves with the HTTP status and body. */
export async function refusal (url: string, options: ConnectOptions = {}): Promise<{ status: number, body: string, opened: boolean }> {
  const ws = prepare(url, options)
  return await new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.terminate()
      resolve({ status: 101, body: '', opened: true })
    })
    ws.once('unexpected-response', (req, res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => {
        req.destroy()
        resolve({ status: res.statusCode ?? 0, body, opened: false })
      })
      res.on('error', reject)
    })
    ws.once('error', (err) => {
      if (!/Unexpected server response/.test(err.message)) reject(err)
    })
  })
}
