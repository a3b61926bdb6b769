/**
 * A real backend service for tests: a `ws` server on a free loopback port
 * that records every event the gateway sends and lets the test send actions.
 */
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { WebSocketServer, type WebSocket } from 'ws'
import { Inbox } from './waiter.js'

export interface ReceivedEvent {
  event: string
  user?: string
  [key: string]: unknown
}

export interface TestBackend {
  url: string
  port: number
  /** Every event, batches flattened, in arrival order. */
  events: Inbox<ReceivedEvent>
  /** Raw frames as received. */
  frames: Inbox<string>
  /** Each gateway link as it connects, with the request that opened it. */
  links: Inbox<{ socket: WebSocket, request: IncomingMessage }>
  /** Sends a raw frame (or JSON value) down the most recent link. */
  send (frame: unknown): void
  /** Waits for the next event of `kind` (and user, if given). */
  next (kind: string, user?: string, timeoutMs?: number): Promise<ReceivedEvent>
  /** Cuts every link without a close frame, as a crashed process would. */
  kill (): void
  close (): Promise<void>
}

export interface BackendOptions {
  port?: number
  /** Refuse links that do not present this bearer token. */
  token?: string
  /** False: never answer the gateway's pings, like a hung process. */
  autoPong?: boolean
}

export async function startBackend (options: BackendOptions = {}): Promise<TestBackend> {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: options.port ?? 0,
    autoPong: options.autoPong ?? true,
    verifyClient: options.token === undefined
      ? undefined
      : (info, done) => done(info.req.headers.authorization === `Bearer ${options.token}`, 401)
  })
  await once(wss, 'listening')
  const port = (wss.address() as { port: number }).port
  const events = new Inbox<ReceivedEvent>()
  const frames = new Inbox<string>()
  const links = new Inbox<{ socket: WebSocket, request: IncomingMessage }>()
  let latest: WebSocket | undefined
  wss.on('connection', (socket, request) => {
    latest = socket
    links.push({ socket, request })
    socket.on('message', (data) => {
      const text = data.toString()
      frames.push(text)
      const parsed = JSON.parse(text) as ReceivedEvent | ReceivedEvent[]
      for (const event of [parsed].flat()) events.push(event)
    })
  })
  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    events,
    frames,
    links,
    send (frame) {
      if (!latest) throw new Error('no gateway link is connected')
      latest.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
    },
    next (kind, user, timeoutMs) {
      return events.next((e) => e.event === kind && (user === undefined || e.user === user), timeoutMs, `${kind}${user ? ` of ${user}` : ''}`)
    },
    kill () {
      for (const client of wss.clients) client.terminate()
    },
    async close () {
      for (const client of wss.clients) client.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
    }
  }
}

/** A backend closed when the test ends. */
export async function backendFor (t: { teardown (fn: () => unknown): void }, options: BackendOptions = {}): Promise<TestBackend> {
  const backend = await startBackend(options)
  t.teardown(() => backend.close())
  return backend
}
