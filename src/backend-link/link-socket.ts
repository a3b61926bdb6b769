/**
 * The `WebSocket` class handed to reconnecting-websocket. reconnecting-websocket
 * only passes `(url, protocols)`, so everything else a link socket needs
 * (the backend's bearer token, liveness pings, an `error` listener) is bound
 * here, once per link.
 */
import { WebSocket } from 'ws'

export interface LinkSocketOptions {
  token?: string
  /** `backend.mask`: false writes every frame with an all-zero masking key, which ws then neither applies nor copies for. */
  mask: boolean
  pingIntervalMs: number
  /** Largest frame accepted from the backend. */
  maxPayload: number
  /** Each new socket, so the link can write with callbacks and read `bufferedAmount`. */
  onSocket (socket: WebSocket): void
  /** Errors are reported through reconnecting-websocket too; this one keeps a late error from crashing the process. */
  onError (err: Error): void
}

export type LinkSocketClass = new (url: string, protocols?: string | string[]) => WebSocket

export function linkSocketClass (options: LinkSocketOptions): LinkSocketClass {
  const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {}
  const generateMask = options.mask ? undefined : zeroMask
  return class LinkSocket extends WebSocket {
    constructor (url: string, protocols?: string | string[]) {
      super(url, protocols, { headers, perMessageDeflate: false, maxPayload: options.maxPayload, generateMask })
      this.on('error', options.onError)
      if (options.pingIntervalMs > 0) this.once('open', () => this.keepAlive(options.pingIntervalMs))
      options.onSocket(this)
    }

    /** A backend that misses a pong is dead: terminate, and reconnecting-websocket redials. */
    private keepAlive (intervalMs: number): void {
      let alive = true
      const markAlive = (): void => { alive = true }
      this.on('pong', markAlive)
      this.on('message', markAlive)
      const timer = setInterval(() => {
        if (!alive) {
          this.terminate()
          return
        }
        alive = false
        this.ping()
      }, intervalMs)
      timer.unref()
      this.once('close', () => clearInterval(timer))
    }
  }
}

function zeroMask (mask: Buffer): void {
  mask.fill(0)
}
