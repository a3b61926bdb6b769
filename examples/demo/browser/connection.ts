/**
 * One endpoint connection that survives network trouble: gatehouse-client
 * (src/client, docs/client.md) redials with jittered backoff as the gateway's
 * close codes say, asking for a token on every attempt.
 */
import { GatehouseClient } from 'gatehouse-client'
import type { DemoTokens } from './demo-tokens.js'

export type ConnectionState = 'connecting' | 'open' | 'closed'

export interface ConnectionEvents {
  state (state: ConnectionState, detail: string): void
  message (data: unknown): void
}

/** What the page says when a close ends the connection: the gateway's 4409 and the game's own codes. */
const ENDINGS = new Map<number, string>([
  [4409, 'replaced by a newer connection (another tab?)'],
  [4403, 'this match already has two players'],
  [4400, 'no match id']
])

export class Connection {
  private readonly client: GatehouseClient
  /** Set by close(): the client's closed event that follows is not news. */
  private left = false

  constructor (path: string, tokens: DemoTokens, private readonly on: ConnectionEvents) {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`
    this.client = new GatehouseClient(url, {
      token: async () => {
        await tokens.fresh()
        return tokens.current
      },
      minDelayMs: 250,
      maxDelayMs: 5000
    })
    on.state('connecting', '')
    this.client.on('open', () => on.state('open', ''))
    this.client.on('message', ({ data }) => this.receive(data))
    this.client.on('closed', ({ code, reason, retry, delayMs }) => {
      if (this.left) return
      if (retry) on.state('connecting', `reconnecting in ${Math.ceil(delayMs / 1000)} s`)
      else on.state('closed', ENDINGS.get(code) ?? (reason || 'could not connect'))
    })
  }

  send (request: unknown): void {
    this.client.sendJson(request)
  }

  close (): void {
    this.left = true
    this.client.close(1000, 'left')
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
