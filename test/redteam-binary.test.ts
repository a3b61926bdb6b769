/**
 * Red team of the binary link encoding (protocol/PROTOCOL.md §2a): a backend
 * writing crafted binary frames to a real gateway, over real sockets. The
 * backend here writes records by hand from the layout in PROTOCOL.md. Tests
 * marked "held" pin behaviour the code already had.
 */
import { once } from 'node:events'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { WebSocket, WebSocketServer } from 'ws'
import { GatehouseBackend } from '../src/sdk/index.js'
import { BACKEND_TOKEN, captureLogger } from './sdk-fixtures.js'
import { connect, type TestClient } from './helpers/client.js'
import { startGateway, testConfig, type EndpointSpec } from './helpers/gateway.js'
import { tokenFor } from './helpers/tokens.js'
import { Inbox } from './helpers/waiter.js'
import { eventually } from './helpers/cluster.js'
import { pick } from '../src/pool/hrw.js'
import { MESSAGE, SEND, messageRecord, record, sendRecord } from './helpers/records.js'

t.setTimeout(120_000)

// memory is measured after a full collection
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

interface RawBackend {
  url: string
  /** Event names (and users) as they came, JSON text frames only: the tests here send text and binary sends only. */
  events: Inbox<{ event: string, user?: string }>
  send (frame: string | Buffer): void
}

async function rawBackend (t: { teardown (fn: () => unknown): void }): Promise<RawBackend> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  t.teardown(async () => {
    for (const client of wss.clients) client.terminate()
    await new Promise((resolve) => wss.close(resolve))
  })
  const events = new Inbox<{ event: string, user?: string }>()
  let latest: WebSocket | undefined
  wss.on('connection', (socket) => {
    latest = socket
    socket.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) for (const event of [JSON.parse(data.toString()) as { event: string, user?: string }].flat()) events.push(event)
    })
  })
  return {
    url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}`,
    events,
    send (frame) {
      if (!latest) throw new Error('no link')
      latest.send(frame)
    }
  }
}

function binaryEndpoint (url: string, extra: Record<string, unknown> = {}): EndpointSpec {
  return { name: 'game', path: '/game/:matchId', resumeGraceMs: 30000, backend: { url, encoding: 'binary', minReconnectDelayMs: 20, maxReconnectDelayMs: 200, ...extra } }
}

async function nextBinary (client: TestClient, what: string): Promise<Buffer> {
  const message = await client.messages.next(undefined, 10000, what)
  if (!Buffer.isBuffer(message)) throw new Error(`${what}: got a text frame ${String(message)}`)
  return message
}

t.test('broke: a 1-byte SEND in a frame padded with a 1 MiB skipped record pinned the whole frame in a held session (counted as 1 byte of maxBufferedBytes)', async (t) => {
  const backend = await rawBackend(t)
  const gateway = await startGateway(t, testConfig([binaryEndpoint(backend.url)]))
  await backend.events.next((e) => e.event === 'sync', 10000, 'sync')
  const alice = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  const bob = await connect(gateway.url('/game/m1'), { token: tokenFor('bob') })
  await backend.events.next((e) => e.event === 'open' && e.user === 'alice', 10000, 'open alice')
  await backend.events.next((e) => e.event === 'open' && e.user === 'bob', 10000, 'open bob')
  alice.ws.terminate()
  await gateway.logged(/holding its session for a resume/)
  gc()
  const before = process.memoryUsage().arrayBuffers
  const FRAMES = 48
  const padding = record(9, Buffer.alloc(1 << 20))
  for (let i = 0; i < FRAMES; i++) backend.send(Buffer.concat([sendRecord(SEND, ['alice'], Buffer.from([i])), padding]))
  // one link's actions run in order: once bob has his, alice's are kept
  backend.send(sendRecord(SEND, ['bob'], Buffer.from('bob')))
  t.equal((await nextBinary(bob, 'bob\'s send')).toString(), 'bob', 'the frames for alice were taken before bob\'s')
  // what is only in flight (socket buffers, a frame being decoded) goes within a few collections; what a kept send pins stays
  const grown = await eventually(async () => {
    await new Promise((resolve) => setTimeout(resolve, 50))
    gc()
    return process.memoryUsage().arrayBuffers - before
  }, (n) => n < 8 * (1 << 20), 5000, 'memory to settle').catch(() => process.memoryUsage().arrayBuffers - before)
  t.ok(grown < 8 * (1 << 20), `${FRAMES} kept 1-byte sends hold about their bytes, not their ${FRAMES} MiB of frames (grew ${Math.round(grown / 1024)} KiB)`)
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { reason: 'binary_unknown_record' }), FRAMES, 'each padding record was counted as unknown')
  const again = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  for (let i = 0; i < FRAMES; i++) t.same([...await nextBinary(again, `kept send ${i}`)], [i], `kept send ${i} arrives byte for byte, in order`)
})

t.test('held: the SDK under crafted binary frames from a gateway (a user never opened, prototype keys in params, the largest u48 seq, a hello switching encodings mid-frame) neither crashes nor stops serving', async (t) => {
  const received = new Inbox<{ user: string, data: unknown, params: unknown }>()
  const backend: GatehouseBackend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, {
    onMessage (user, data, { params }) {
      received.push({ user, data, params })
    }
  })
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${BACKEND_TOKEN}` } })
  await once(ws, 'open')
  t.teardown(() => ws.terminate())
  const hello = { event: 'hello', gateway: 'gw', endpoint: 'game', session: 's', protocol: 1, encoding: 'binary', acks: true }
  ws.send(JSON.stringify([hello, { event: 'sync', users: [], seq: 0 }, { event: 'open', user: 'alice', claims: {}, params: {}, seq: 1 }]))
  ws.send(messageRecord(MESSAGE, 'mallory', Buffer.from('never opened'), 2))
  ws.send(messageRecord(MESSAGE, 'alice', Buffer.from('proto'), 3, '{"__proto__":"x","constructor":"y"}'))
  ws.send(messageRecord(MESSAGE, 'alice', Buffer.from('polluting'), 4, '{"__proto__":{"polluted":"yes"}}'))
  // a hello that turns the binary encoding off, then a MESSAGE record in the same frame
  ws.send(Buffer.concat([record(1, Buffer.from(JSON.stringify({ ...hello, encoding: undefined, session: 's2' }))), messageRecord(MESSAGE, 'alice', Buffer.from('after'), 1)]))
  ws.send(Buffer.from([2, 0, 0]))
  ws.send(JSON.stringify([{ event: 'sync', users: [{ user: 'alice', claims: {}, params: {} }], seq: 0 }]))
  const hugeSeq = 2 ** 48 - 1
  ws.send(JSON.stringify({ event: 'message', user: 'alice', params: {}, data: 'text after', seq: hugeSeq }))
  const last = await received.next((m) => m.data === 'text after', 10000, 'the text message after the crafted frames')
  t.equal(last.user, 'alice', 'the backend still serves alice')
  t.notOk(Object.prototype.hasOwnProperty.call({}, 'polluted') || ({} as Record<string, unknown>).polluted !== undefined, 'no prototype was polluted by params')
  const proto = received.all.find((m) => Buffer.isBuffer(m.data) && m.data.toString() === 'proto')
  t.ok(proto === undefined || Object.getPrototypeOf(proto.params) === Object.prototype, 'params with a __proto__ key did not replace the object\'s prototype')
  t.ok(backend.stats.badFrames >= 1, `the bad frames were counted (${JSON.stringify(backend.stats.badFramesByKind)})`)
})

function parseRecords (frame: Buffer): Array<{ type: number, body: Buffer }> {
  const out: Array<{ type: number, body: Buffer }> = []
  for (let at = 0; at < frame.length;) {
    const length = frame.readUInt32BE(at + 1)
    out.push({ type: frame[at], body: frame.subarray(at + 5, at + 5 + length) })
    at += 5 + length
  }
  return out
}

interface MemberEvent { event: string, user?: string, seq?: number, data?: unknown }

/** A pool member that reads records by hand and acknowledges nothing; `kill()` cuts its links as a SIGKILL would. */
async function silentMember (t: { teardown (fn: () => unknown): void }): Promise<{ url: string, events: Inbox<MemberEvent>, kill (): Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  const events = new Inbox<MemberEvent>()
  wss.on('connection', (socket) => {
    socket.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) {
        for (const event of [JSON.parse(data.toString()) as MemberEvent].flat()) events.push(event)
        return
      }
      for (const { type, body } of parseRecords(data)) {
        if (type === 1) for (const event of [JSON.parse(body.toString()) as MemberEvent].flat()) events.push(event)
        else if (type === 2) {
          const seq = body.readUIntBE(0, 6)
          const userLength = body.readUInt16BE(6)
          const user = body.subarray(8, 8 + userLength).toString()
          const paramsLength = body.readUInt16BE(8 + userLength)
          events.push({ event: 'message', user, seq, data: Buffer.from(body.subarray(10 + userLength + paramsLength)) })
        }
      }
    })
  })
  let closed = false
  const kill = async (): Promise<void> => {
    if (closed) return
    closed = true
    for (const client of wss.clients) client.terminate()
    await new Promise((resolve) => wss.close(resolve))
  }
  t.teardown(kill)
  return { url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}`, events, kill }
}

t.test('held: binary + pool + acks: a member killed with raw messages unacknowledged, its heir gets the open then every raw and text message, byte for byte and in order', async (t) => {
  const a = await silentMember(t)
  const b = await silentMember(t)
  const gateway = await startGateway(t, testConfig([{
    name: 'game',
    path: '/game/:matchId',
    backend: { urls: [{ id: 'a', url: a.url }, { id: 'b', url: b.url }], route: 'params.matchId', encoding: 'binary', acks: true, failoverMs: 300, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 }
  }]))
  await a.events.next((e) => e.event === 'sync', 10000, 'a synced')
  await b.events.next((e) => e.event === 'sync', 10000, 'b synced')
  const ids = [{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }]
  let match = ''
  for (let i = 0; match === ''; i++) if (pick(`m${i}`, ids)?.id === 'a') match = `m${i}`
  const alice = await connect(gateway.url(`/game/${match}`), { token: tokenFor('alice') })
  await a.events.next((e) => e.event === 'open' && e.user === 'alice', 10000, 'open on a')
  const sent: Array<Buffer | string> = []
  for (let i = 0; i < 20; i++) {
    const frame = i % 4 === 3 ? `text-${i}` : Buffer.from([i, 0, 255 - i])
    sent.push(frame)
    alice.ws.send(frame)
  }
  await a.events.next((e) => e.event === 'message' && e.data === 'text-19', 10000, 'the last message reached a')
  await a.kill()
  await b.events.next((e) => e.event === 'open' && e.user === 'alice', 15000, 'alice opened on b after the failover')
  const replayed: MemberEvent[] = []
  for (let i = 0; i < sent.length; i++) replayed.push(await b.events.next((e) => e.event === 'message' && e.user === 'alice' && !replayed.includes(e), 10000, `replayed message ${i}`))
  t.same(replayed.map((e) => Buffer.isBuffer(e.data) ? [...e.data] : e.data), sent.map((s) => Buffer.isBuffer(s) ? [...s] : s), 'b got every message, raw ones byte for byte as records, in the order sent')
  const seqs = replayed.map((e) => e.seq ?? 0)
  t.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `their seqs on b's link rise (${seqs.join(',')})`)
  t.equal(await gateway.metric('gatehouse_pool_failovers_total', { member: 'a' }), 1, 'one failover counted')
  alice.ws.send(Buffer.from([42]))
  const live = await b.events.next((e) => e.event === 'message' && Buffer.isBuffer(e.data) && e.data[0] === 42, 10000, 'live traffic after the replay')
  t.ok((live.seq ?? 0) > seqs[seqs.length - 1], 'live traffic follows the replay')
})

t.test('broke: one SDK process behind two member URLs of a pool (`ws://h:p` and `ws://h:p/?alias`, both accepted) took each member\'s hello as the other\'s reconnect and cut it, for ever; links of one gateway to two members now live side by side', async (t) => {
  const links: string[] = []
  const backend: GatehouseBackend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, {
    onMessage (user, data) {
      backend.send(user, data as Buffer)
    }
  })
  backend.on('link', ({ gateway }) => links.push(gateway))
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  const gateway = await startGateway(t, testConfig([{
    name: 'game',
    path: '/game/:matchId',
    backend: { urls: [{ id: 'a', url }, { id: 'b', url: `${url}/?alias` }], route: 'params.matchId', token: BACKEND_TOKEN, encoding: 'binary', acks: true, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 }
  }]))
  const ids = [{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }]
  const matchOf = (member: string): string => {
    for (let i = 0; ; i++) if (pick(`m${i}`, ids)?.id === member) return `m${i}`
  }
  const players = await Promise.all(['a', 'b'].map(async (member, i) => await connect(gateway.url(`/game/${matchOf(member)}`), { token: tokenFor(`p${i}`) })))
  for (let round = 0; round < 10; round++) {
    for (const [i, player] of players.entries()) {
      player.ws.send(Buffer.from([round, i]))
      t.same([...await nextBinary(player, `echo ${round} of p${i}`)], [round, i], `round ${round}: p${i} (on member ${i === 0 ? 'a' : 'b'}) gets its echo`)
    }
  }
  t.equal(links.length, 2, `two links came up, one per member, and none was cut by the other (${links.length} link events)`)
  t.equal(await gateway.metric('gatehouse_pool_failovers_total'), 0, 'no failover')
})
