/**
 * One endpoint connection that survives network trouble: reconnecting-websocket
 * redials with backoff, each attempt with a fresh token offered as the
 * `bearer` subprotocol (browsers cannot set headers on a WebSocket).
 */
import rwsModule from 'reconnecting-websocket'
import type { DemoTokens } from './demo-tokens.js'

// Typed as the CommonJS build under NodeNext; the page loads the ESM build
// (import map in index.html), whose default export is the class itself.
const ReconnectingWebSocket = rwsModule as unknown as typeof rwsModule.default

export type ConnectionState = 'connecting' | 'open' | 'closed'

export interface ConnectionEvents {
  state (state: ConnectionState, detail: string): void
  message (data: unknown): void
}

/**
 * Close codes after which redialling cannot help: the gateway's 4409 (its
 * catalog marks it `retry: false`) and the game's own. Everything else,
 * 1008 rate limiting and 1013 backend away included, is worth a retry.
 */
const TERMINAL = new Map<number, string>([
  [4409, 'replaced by a newer connection (another tab?)'],
  [4403, 'this match already has two players'],
  [4400, 'no match id']
])

export class Connection {
  private readonly socket: InstanceType<typeof ReconnectingWebSocket>
  /** Set by close(): the socket's own close event that follows is not news. */
  private left = false

  constructor (path: string, tokens: DemoTokens, private readonly on: ConnectionEvents) {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`
    // reconnecting-websocket only passes (url, protocols): the token is read here, per attempt
    const BearerWebSocket = class extends WebSocket {
      constructor (target: string | URL) {
        super(target, ['bearer', tokens.current])
      }
    }
    this.socket = new ReconnectingWebSocket(async () => {
      await tokens.fresh()
      return url
    }, undefined, { WebSocket: BearerWebSocket, minReconnectionDelay: 250, maxReconnectionDelay: 5000, connectionTimeout: 4000 })
    on.state('connecting', '')
    this.socket.addEventListener('open', () => on.state('open', ''))
    this.socket.addEventListener('message', (event) => this.receive(event.data))
    this.socket.addEventListener('close', (event) => {
      if (this.left) return
      const terminal = TERMINAL.get(event.code)
      if (terminal !== undefined) {
        this.socket.close()
        on.state('closed', terminal)
      } else {
        on.state('connecting', `retry ${this.socket.retryCount + 1} after close ${event.code}`)
      }
    })
  }

  send (request: unknown): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(JSON.stringify(request))
  }

  close (): void {
    this.left = true
    this.socket.close(1000, 'left')
    this.on.state('closed', 'left')
  }

  private receive (data: unknown): void {
    if (typeof data !== 'string') return
    try {
      this.on.message(JSON.parse(data))
    } catch {
      // the services only send JSON; anything else is not for this page
    }
  }
}
