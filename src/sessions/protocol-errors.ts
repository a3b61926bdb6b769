/**
 * A player that breaks the WebSocket protocol: `ws` closes its socket with
 * the status code it attached to the error, but with an empty reason. Here
 * the player gets a reason too, and the backend's `close` event gets the
 * same code and reason the player got (protocol/PROTOCOL.md §7).
 */
import type { EventEmitter } from 'node:events'
import type { WebSocket } from 'ws'
import { CloseCodes, type CloseCode } from '../../protocol/index.js'

/** The reason sent with each status code `ws` gives a protocol error. */
const REASONS = new Map<number, string>([
  [CloseCodes.PROTOCOL_ERROR.code, CloseCodes.PROTOCOL_ERROR.reason],
  [CloseCodes.INVALID_PAYLOAD.code, CloseCodes.INVALID_PAYLOAD.reason],
  [CloseCodes.TOO_MANY_FRAGMENTS.code, CloseCodes.TOO_MANY_FRAGMENTS.reason],
  [CloseCodes.MESSAGE_TOO_BIG.code, CloseCodes.MESSAGE_TOO_BIG.reason]
])

/**
 * The close `ws` chose for one of its protocol errors, or undefined for any
 * other error. `ws` keeps the code under its (unexported) `kStatusCode` symbol.
 */
export function protocolErrorClose (err: Error): CloseCode | undefined {
  const key = Object.getOwnPropertySymbols(err).find((s) => s.description === 'status-code')
  const code = key === undefined ? undefined : (err as unknown as Record<symbol, unknown>)[key]
  if (typeof code !== 'number') return undefined
  return { code, reason: REASONS.get(code) ?? CloseCodes.PROTOCOL_ERROR.reason, retry: false }
}

/**
 * Calls `ended` with the close of each protocol error on `socket`, once that
 * close is on its way to the player. `ws` sends its own close frame (code,
 * no reason) from its receiver's `error` listener; closing first, from a
 * listener put ahead of it, sends the reason along and makes ws's own close
 * a no-op. `_receiver` is ws's parser of the socket, set before `connection`.
 */
export function onProtocolError (socket: WebSocket, ended: (close: CloseCode) => void): void {
  const receiver = (socket as unknown as { _receiver: EventEmitter })._receiver
  receiver.prependListener('error', (err: Error) => {
    const close = protocolErrorClose(err)
    if (close === undefined) return
    socket.close(close.code, close.reason)
    ended(close)
  })
}
