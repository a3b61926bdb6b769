/**
 * One player's connection to one endpoint: its identity, its socket, and the
 * guarantee that its end is reported exactly once whatever ends it.
 */
import type { WebSocket } from 'ws'
import { messagePrefix, truncateReason, type CloseCode, type Params } from '../../protocol/index.js'
import type { Identity } from '../auth/authenticator.js'
import { TokenBucket } from './token-bucket.js'

export type Delivery = 'sent' | 'slow' | 'gone'

export interface SessionLimits {
  messagesPerSecond: number
  burst: number
  maxBufferedBytes: number
}

/** Told once when a session ends: by the client, by the gateway, or by its backend. */
export type EndListener = (session: ClientSession, code: number, reason: string) => void

export class ClientSession {
  readonly user: string
  readonly claims: Record<string, unknown>
  /** Head of every `message` event of this client, built once. */
  readonly prefix: string
  readonly bucket: TokenBucket
  /** Cleared at each heartbeat; set again by the client's pong. */
  alive = true
  private ended = false

  constructor (
    readonly socket: WebSocket,
    identity: Identity,
    readonly params: Params,
    private readonly limits: SessionLimits,
    private readonly onEnd: EndListener
  ) {
    this.user = identity.user
    this.claims = identity.claims
    this.prefix = messagePrefix(identity.user, params)
    this.bucket = new TokenBucket(limits.messagesPerSecond, limits.burst)
  }

  get isEnded (): boolean {
    return this.ended
  }

  /**
   * Writes one frame, unless the client already lags more than
   * `maxBufferedBytes` behind: then it is closed as a slow consumer instead
   * of growing memory. One frame larger than the bound still goes to a
   * client that keeps up.
   */
  deliver (payload: string | Buffer, binary: boolean, slow: CloseCode): Delivery {
    if (this.ended) return 'gone'
    if (this.socket.bufferedAmount > this.limits.maxBufferedBytes) {
      this.close(slow)
      return 'slow'
    }
    this.socket.send(payload, { binary })
    return 'sent'
  }

  /** Reports the end with the gateway's code, then sends the close frame. */
  close ({ code, reason }: { code: number, reason: string }): void {
    const why = truncateReason(reason)
    this.end(code, why)
    this.socket.close(code, why)
  }

  /** Drops the socket without a close frame (dead peer); reported as `code`. */
  terminate ({ code, reason }: { code: number, reason: string }): void {
    this.end(code, reason)
    this.socket.terminate()
  }

  /** Reports the end once; later calls (the socket's own close event, say) are no-ops. */
  end (code: number, reason: string): void {
    if (this.ended) return
    this.ended = true
    this.onEnd(this, code, reason)
  }
}
