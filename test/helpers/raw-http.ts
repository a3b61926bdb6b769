/** HTTP over a raw TCP socket, for requests no HTTP client would send and for watching who ends the connection. */
import { connect as tcpConnect } from 'node:net'

export interface RawAnswer {
  /** The bytes the server sent, head and body. */
  response: string
  /** The status of the first answer, 0 when none came. */
  status: number
  /** True once the server ended the TCP connection; false if it still held it after `waitMs`. */
  ended: boolean
}

/**
 * Sends `request` on a raw TCP socket and waits for the server to end the
 * connection; the client itself never closes it, so only the server can.
 */
export async function raw (port: number, request: string, waitMs = 10000): Promise<RawAnswer> {
  const socket = tcpConnect(port, '127.0.0.1')
  let response = ''
  socket.on('data', (chunk: Buffer) => { response += chunk.toString('latin1') })
  socket.on('error', () => {})
  socket.write(request)
  const ended = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), waitMs)
    const done = (): void => {
      clearTimeout(timer)
      resolve(true)
    }
    socket.once('end', done)
    socket.once('close', done)
  })
  socket.destroy()
  return { response, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0), ended }
}

/** A WebSocket upgrade request for `path`, with any extra header lines (each ending in CRLF). */
export function upgradeRequest (path: string, extraHeaders = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extraHeaders}\r\n`
}
