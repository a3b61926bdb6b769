/**
 * Fixtures for the SDK and example tests: a stand-in gateway on a real
 * socket (to send what a real gateway never would), a logger that records,
 * handlers that record every call, and a recording SDK service for the link
 * encoding tests.
 */
import { WebSocket } from 'ws'
import { GatehouseBackend, type BackendHandlers, type BackendLogger } from '../src/sdk/index.js'
import { Inbox } from './helpers/waiter.js'

export const BACKEND_TOKEN = 'backend-token-for-tests-0123456789'

export interface FakeGateway {
  ws: WebSocket
  /** Actions the backend sent, batches flattened. */
  actions: Inbox<Record<string, unknown>>
  closed: Promise<{ code: number, reason: string }>
  /** Sends a string as it is, anything else as JSON. */
  send (frame: unknown): void
}

/** Dials a backend as a gateway would; rejects when the upgrade is refused. */
export async function fakeGateway (url: string, options: { token?: string, autoPong?: boolean } = {}): Promise<FakeGateway> {
  const headers: Record<string, string> = options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }
  const ws = new WebSocket(url, { headers, autoPong: options.autoPong ?? true })
  const actions = new Inbox<Record<string, unknown>>()
  ws.on('message', (data) => {
    for (const action of [JSON.parse(data.toString())].flat()) actions.push(action)
  })
  const closed = new Promise<{ code: number, reason: string }>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  })
  ws.on('error', () => {})
  return { ws, actions, closed, send: (frame) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)) }
}

/** A gateway process's `hello`; another `session` stands for another process under the same node id. */
export function hello (gateway: string, endpoint = 'lobby', protocol = 1, session = 'session-1'): Record<string, unknown> {
  return { event: 'hello', gateway, endpoint, session, protocol }
}

export interface CapturedLogger extends BackendLogger {
  /** `level msg json` per call. */
  lines: Inbox<string>
}

export function captureLogger (): CapturedLogger {
  const lines = new Inbox<string>()
  const at = (level: string) => (obj: object, msg: string) => {
    let fields: string
    try {
      fields = JSON.stringify(obj)
    } catch {
      fields = '{}'
    }
    lines.push(`${level} ${msg} ${fields}`)
  }
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

/** Handlers that record each call as `open alice {"room":"a"}`, `message alice {...}`, `refresh alice {claims}`, `close alice 1006 reason`, `drained node-a game`. */
export function recorder (): { handlers: Required<BackendHandlers>, calls: Inbox<string> } {
  const calls = new Inbox<string>()
  return {
    calls,
    handlers: {
      onOpen: (user, _claims, params) => calls.push(`open ${user} ${JSON.stringify(params)}`),
      onMessage: (user, data, { binary }) => calls.push(`message ${user} ${JSON.stringify(data)}${binary ? ' binary' : ''}`),
      onRefresh: (user, claims) => calls.push(`refresh ${user} ${JSON.stringify(claims)}`),
      onClose: (user, code, reason) => calls.push(`close ${user} ${code} ${reason}`),
      onDrained: ({ gateway, endpoint }) => calls.push(`drained ${gateway} ${endpoint}`)
    }
  }
}

/** The next recorded call that starts with `prefix`. */
export async function call (calls: Inbox<string>, prefix: string): Promise<string> {
  return await calls.next((c) => c.startsWith(prefix), 10000, prefix)
}

/** The next JSON text message on a player's socket whose `type` is `type`. */
export async function nextOfType<T = Record<string, unknown>> (messages: Inbox<string | Buffer>, type: string, match: (m: T) => boolean = () => true): Promise<T> {
  const parse = (m: string | Buffer): Record<string, unknown> | undefined => {
    try {
      return typeof m === 'string' ? JSON.parse(m) : undefined
    } catch {
      return undefined
    }
  }
  const found = await messages.next((m) => {
    const value = parse(m)
    return value?.type === type && match(value as T)
  }, 10000, `a "${type}" message`)
  return parse(found) as T
}

/** Resolves once `backend` has applied `count` syncs; call it before the gateways start. */
export async function synced (backend: GatehouseBackend, count = 1): Promise<void> {
  await new Promise<void>((resolve) => {
    let seen = 0
    const onSynced = (): void => {
      if (++seen < count) return
      backend.off('synced', onSynced)
      resolve()
    }
    backend.on('synced', onSynced)
  })
}

export interface RecordingService {
  backend: GatehouseBackend
  url: string
  received: Inbox<{ user: string, data: unknown, binary: boolean }>
  synced: Inbox<unknown>
}

/** An SDK service that records every message and its syncs, and answers each message as `reply` says. */
export async function recordingService (
  t: { teardown (fn: () => unknown): void },
  reply: (backend: GatehouseBackend, user: string, data: unknown, binary: boolean) => void
): Promise<RecordingService> {
  const received = new Inbox<{ user: string, data: unknown, binary: boolean }>()
  const backend: GatehouseBackend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, {
    onMessage (user, data, { binary }) {
      received.push({ user, data, binary })
      reply(backend, user, data, binary)
    }
  })
  const synced = new Inbox<unknown>()
  backend.on('synced', (info) => synced.push(info))
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  return { backend, url, received, synced }
}
