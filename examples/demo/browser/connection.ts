/**
 * One endpoint connection that survives network trouble: gatehouse-client
 * (src/client, docs/client.md) redials with jittered backoff as the gateway's
 * close codes say, asking for a token on every attempt, and refreshes the
 * short-lived demo token on the live socket ahead of its expiry.
 */
import { GatehouseClient } from 'gatehouse-client'
import type { DemoTokens } from './demo-tokens.js'

/** `idle`: not connected and not meant to be (the player left the match). */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'closed'

export interface ConnectionEvents {
  /** `detail` is for people: plain words, no close codes. */
  state (state: ConnectionState, detail: string): void
  message (data: unknown): void
  /** The same player opened the page elsewhere (4409): this connection is over. */
  replaced (): void
}

/** What the page says when a close ends the connection: the game's own codes. */
const ENDINGS = new Map<number, string>([
  [4403, 'this match already has two players'],
  [4400, 'no match to join']
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
    on.state('connecting', 'connecting…')
    this.client.on('open', () => on.state('open', 'connected'))
    this.client.on('message', ({ data }) => this.receive(data))
    this.client.on('replaced', () => {
      this.left = true
      on.state('closed', 'opened in another tab')
      on.replaced()
    })
    this.client.on('closed', ({ code, retry, delayMs }) => {
      if (this.left) return
      if (retry) on.state('connecting', `connection lost, trying again in ${Math.max(1, Math.ceil(delayMs / 1000))} s`)
      else on.state('closed', ENDINGS.get(code) ?? 'disconnected: reload the page to try again')
    })
  }

  send (request: unknown): void {
    this.client.sendJson(request)
  }

  /** Ends on purpose: the badge shows `state` (grey `idle` by default) with `detail`. */
  close (detail: string, state: ConnectionState = 'idle'): void {
    if (this.left) return
    this.left = true
    this.client.close(1000, 'left')
    this.on.state(state, detail)
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
