/**
 * Link records by hand (protocol/PROTOCOL.md §2a), for tests of the binary and
 * raw link encodings: a codec written from the layout in PROTOCOL.md, not
 * the one under test (protocol/binary.ts), so the tests have an independent
 * oracle; a backend and a stand-in gateway that speak it over real sockets.
 */
import { once } from 'node:events'
import { WebSocket, WebSocketServer } from 'ws'
import { BACKEND_TOKEN } from '../sdk-fixtures.js'
import type { TestGateway } from './gateway.js'
import { Inbox } from './waiter.js'

export const JSON_RECORD = 1
export const MESSAGE = 2
export const SEND = 3
export const TEXT = 4
export const TEXT_SEND = 5

export function record (type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(5)
  header[0] = type
  header.writeUInt32BE(body.length, 1)
  return Buffer.concat([header, body])
}

/** A SEND (3) or TEXT_SEND (5) record: target 0 (all) or 1 (a u32 count, then each user as u16 length + UTF-8), then the data. */
export function sendRecord (type: number, to: 'all' | string[], data: Buffer | string): Buffer {
  const bytes = Buffer.from(data)
  if (to === 'all') return record(type, Buffer.concat([Buffer.from([0]), bytes]))
  const count = Buffer.alloc(4)
  count.writeUInt32BE(to.length)
  const users = to.map((u) => {
    const length = Buffer.alloc(2)
    length.writeUInt16BE(Buffer.byteLength(u))
    return Buffer.concat([length, Buffer.from(u)])
  })
  return record(type, Buffer.concat([Buffer.from([1]), count, ...users, bytes]))
}

export const textSend = (to: 'all' | string[], data: Buffer | string): Buffer => sendRecord(TEXT_SEND, to, data)
export const jsonRecord = (value: unknown): Buffer => record(JSON_RECORD, Buffer.from(JSON.stringify(value)))

/** A MESSAGE (2) or TEXT (4) record as a gateway writes it: seq u48, user u16 + UTF-8, params u16 + JSON (as given), the payload. */
export function messageRecord (type: number, user: string, data: Buffer | string, seq = 0, params = '{}'): Buffer {
  const u = Buffer.from(user)
  const p = Buffer.from(params)
  const head = Buffer.alloc(6 + 2 + u.length + 2 + p.length)
  head.writeUIntBE(seq, 0, 6)
  head.writeUInt16BE(u.length, 6)
  u.copy(head, 8)
  head.writeUInt16BE(p.length, 8 + u.length)
  p.copy(head, 10 + u.length)
  return record(type, Buffer.concat([head, Buffer.from(data)]))
}

/** A TEXT record, with params as given (raw JSON text). */
export const textRecord = (user: string, text: string | Buffer, params = '{}', seq = 0): Buffer => messageRecord(TEXT, user, text, seq, params)

export function parseRecords (frame: Buffer): Array<{ type: number, body: Buffer }> {
  const out: Array<{ type: number, body: Buffer }> = []
  let at = 0
  while (at < frame.length) {
    const type = frame[at]
    const length = frame.readUInt32BE(at + 1)
    out.push({ type, body: frame.subarray(at + 5, at + 5 + length) })
    at += 5 + length
  }
  if (at !== frame.length) throw new Error('records do not fill the frame')
  return out
}

/** An event a hand backend received: a JSON event as sent, or a MESSAGE/TEXT record parsed. */
export interface Received {
  event: string
  user?: string
  conn?: string
  params?: Record<string, string>
  data?: unknown
  binary?: boolean
  seq?: number
  /** The record type it came in (2 MESSAGE, 4 TEXT); absent for JSON. */
  record?: number
  /** A record's payload, byte for byte. */
  bytes?: Buffer
  /** The link frame it came in was binary (with the `frameKind` option). */
  inBinaryFrame?: boolean
  /** The gateway node (its hello's `gateway`) whose link a text frame came on (with the `via` option). */
  via?: string
  [key: string]: unknown
}

/** A MESSAGE or TEXT body: seq u48, user u16 + UTF-8, params u16 + JSON, the payload. */
export function parseMessageBody (type: number, body: Buffer): Received {
  const seq = body.readUIntBE(0, 6)
  let at = 6
  const userLength = body.readUInt16BE(at)
  const user = body.subarray(at + 2, at + 2 + userLength).toString()
  at += 2 + userLength
  const paramsLength = body.readUInt16BE(at)
  const params = JSON.parse(body.subarray(at + 2, at + 2 + paramsLength).toString()) as Record<string, string>
  at += 2 + paramsLength
  return { event: 'message', user, params, record: type, bytes: Buffer.from(body.subarray(at)), ...(seq === 0 ? {} : { seq }) }
}

export interface HandBackend {
  url: string
  events: Inbox<Received>
  /** Every link frame as it came: text or binary, and its size. */
  frames: Inbox<{ binary: boolean, bytes: number }>
  send (frame: string | Buffer): void
  /** Sends down the link of one gateway node (its hello's `gateway`). */
  sendVia (gateway: string, frame: string | Buffer): void
  next (kind: string, user?: string): Promise<Received>
  /** Drops every link (the gateway reconnects). */
  kill (): void
}

export interface HandBackendOptions {
  /** How long next() waits. */
  timeoutMs?: number
  /** Tag events from text frames with `via`, the node whose link they came on. */
  via?: boolean
  /** Tag every event with `inBinaryFrame`. */
  frameKind?: boolean
}

/** A backend that reads and writes the link by hand: JSON text frames, and binary frames of JSON, MESSAGE and TEXT records. */
export async function handBackend (t: { teardown (fn: () => unknown): void }, options: HandBackendOptions = {}): Promise<HandBackend> {
  const { timeoutMs = 10000, via = false, frameKind = false } = options
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  t.teardown(async () => {
    for (const client of wss.clients) client.terminate()
    await new Promise((resolve) => wss.close(resolve))
  })
  const events = new Inbox<Received>()
  const frames = new Inbox<{ binary: boolean, bytes: number }>()
  let latest: WebSocket | undefined
  const byGateway = new Map<string, WebSocket>()
  wss.on('connection', (socket) => {
    latest = socket
    socket.on('message', (data: Buffer, isBinary) => {
      frames.push({ binary: isBinary, bytes: data.length })
      const tagged = (event: Received): Received => frameKind ? { ...event, inBinaryFrame: isBinary } : event
      if (!isBinary) {
        for (const event of [JSON.parse(data.toString()) as Received].flat()) {
          if (event.event === 'hello') byGateway.set(String(event.gateway), socket)
          events.push(tagged(via ? { ...event, via: [...byGateway].find(([, s]) => s === socket)?.[0] } : event))
        }
        return
      }
      for (const { type, body } of parseRecords(data)) {
        if (type === JSON_RECORD) for (const event of [JSON.parse(body.toString()) as Received].flat()) events.push(tagged(event))
        else if (type === MESSAGE || type === TEXT) events.push(tagged(parseMessageBody(type, body)))
        else throw new Error(`unexpected record type ${type}`)
      }
    })
  })
  return {
    url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}`,
    events,
    frames,
    send (frame) {
      if (!latest) throw new Error('no link')
      latest.send(frame)
    },
    sendVia (gateway, frame) {
      const link = byGateway.get(gateway)
      if (!link) throw new Error(`no link from ${gateway}`)
      link.send(frame)
    },
    next: async (kind, user) => await events.next((e) => e.event === kind && (user === undefined || e.user === user), timeoutMs, `${kind} ${user ?? ''}`),
    kill () {
      for (const client of wss.clients) client.terminate()
    }
  }
}

/** What a gateway sends an SDK backend first: `hello` (with `encoding` when given), an empty `sync`, and alice's `open`. */
export function opening (encoding?: string): string {
  return JSON.stringify([
    { event: 'hello', gateway: 'gw', endpoint: 'game', session: 's', protocol: 1, ...(encoding === undefined ? {} : { encoding }) },
    { event: 'sync', users: [] },
    { event: 'open', user: 'alice', claims: {}, params: {} }
  ])
}

/** A stand-in gateway for the SDK that reads binary frames: actions as JSON, other records as { record, body }. */
export async function standInGateway (url: string): Promise<{ ws: WebSocket, actions: Inbox<Record<string, unknown>> }> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${BACKEND_TOKEN}` } })
  const actions = new Inbox<Record<string, unknown>>()
  ws.on('message', (data: Buffer, isBinary) => {
    if (!isBinary) {
      for (const action of [JSON.parse(data.toString())].flat()) actions.push(action)
      return
    }
    for (const { type, body } of parseRecords(data)) {
      if (type === JSON_RECORD) for (const action of [JSON.parse(body.toString())].flat()) actions.push(action)
      else actions.push({ record: type, body: Buffer.from(body) })
    }
  })
  await once(ws, 'open')
  return { ws, actions }
}

/** Sends each bad frame alone, each must be logged with its problem; then each kind must be counted as often as it was sent. */
export async function sendBadFrames (
  t: { match (found: unknown, pattern: RegExp, message: string): unknown, equal (found: unknown, wanted: unknown, message: string): unknown },
  backend: { send (frame: Buffer): void },
  gateway: Pick<TestGateway, 'logged' | 'metric'>,
  cases: Array<[string, Buffer]>
): Promise<Record<string, number>> {
  const expected: Record<string, number> = {}
  for (const [kind, frame] of cases) {
    backend.send(frame)
    const line = await gateway.logged(/backend sent a bad frame/)
    t.match(JSON.stringify(line.problems), /./, `${kind}: logged with its problem`)
    expected[kind] = (expected[kind] ?? 0) + 1
  }
  for (const [kind, n] of Object.entries(expected)) {
    t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { reason: kind }), n, `${kind} counted ${n} times`)
  }
  return expected
}
