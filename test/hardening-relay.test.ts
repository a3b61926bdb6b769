/**
 * Issue 10, items 3, 13 (the player side), 15 and 16: a backend frame that
 * cannot be carried out, the rate limit across reconnects, fragment-heavy
 * messages, `listen()` defaults, and protocol-error close codes.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect as tcpConnect, type Socket } from 'node:net'
import { Redis } from 'ioredis'
import { createGateway } from '../src/index.js'
import { RateBuckets } from '../src/sessions/rate-buckets.js'
import { backendFor } from './helpers/backend.js'
import { connect } from './helpers/client.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { freePort } from './helpers/ports.js'
import { redisFor } from './helpers/redis.js'
import { tokenFor } from './helpers/tokens.js'

/** JSON nested `depth` arrays deep: JSON.parse takes it, JSON.stringify of the parsed value overflows the stack. */
function deepJson (depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth)
}

const FRAME_ERRORS = 'gatehouse_backend_frame_errors_total'

t.test('a backend action too deep to encode is skipped and counted; the gateway goes on', async (t) => {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }]))
  await backend.next('hello')
  const alice = await connect(gateway.url('/lobby'), { token: tokenFor('alice') })
  const bob = await connect(gateway.url('/lobby'), { token: tokenFor('bob') })
  await backend.next('open', 'alice')
  await backend.next('open', 'bob')
  backend.send(`{"action":"send","user":"alice","data":${deepJson(8000)}}`)
  backend.send({ action: 'send', user: 'bob', data: 'still here' })
  t.equal(await bob.next(), 'still here', 'the next action of the link is delivered')
  t.equal(await gateway.metric(FRAME_ERRORS, { endpoint: 'lobby', reason: 'invalid_message' }), 1, 'the skipped action is counted')
  const line = await gateway.logged(/backend action could not be carried out/)
  t.equal(line.action, 'send', 'the log names the action kind')
  t.notOk(gateway.logs.some((l) => l.includes('[[[[')), 'the data is not logged')
  alice.ws.send('ping')
  t.equal((await backend.next('message', 'alice')).data, 'ping', 'alice is still connected')
  t.equal(alice.messages.all.length, 0, 'alice got nothing of the skipped action')
})

t.test('a player cannot crash the gateway through a backend that echoes', async (t) => {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }]))
  await backend.next('hello')
  const alice = await connect(gateway.url('/lobby'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  const deep = deepJson(8000)
  alice.ws.send(deep)
  await backend.next('message', 'alice')
  // what an echo backend writes: the message's data, spliced into a send
  backend.send(`{"action":"send","user":"alice","data":${deep}}`)
  backend.send({ action: 'send', user: 'alice', data: 'after' })
  t.equal(await alice.next(), 'after', 'the echoed action is skipped: alice gets the next one')
  t.equal(await gateway.metric(FRAME_ERRORS, { endpoint: 'lobby', reason: 'invalid_message' }), 1, 'the skipped action is counted')
})

t.test('an action forwarded through redis that cannot be carried out is skipped and counted', async (t) => {
  const redis = await redisFor(t)
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }], {
    cluster: { redis: redis.url, name: 'gh-relay' }
  }))
  await backend.next('hello')
  const alice = await connect(gateway.url('/lobby'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  const publisher = new Redis(redis.url)
  t.teardown(() => publisher.disconnect())
  // another node's forward of an `all`, as it publishes it
  const forward = (n: number, data: string): string => `{"t":"actions","e":"lobby","a":[{"action":"send","all":true,"data":${data}}],"from":"node-x","n":${n},"ep":"x"}`
  t.equal(await publisher.publish('gh-relay:all', forward(1, deepJson(8000))), 1, 'the gateway is subscribed')
  await publisher.publish('gh-relay:all', forward(2, '"forwarded"'))
  t.equal(await alice.next(), 'forwarded', 'the forward too deep to encode is skipped: alice gets the next one')
  t.equal(await gateway.metric(FRAME_ERRORS, { endpoint: 'lobby', reason: 'invalid_message' }), 1, 'the skipped forward is counted')
})

t.test('reconnecting does not refill the rate limit', async (t) => {
  const backend = await backendFor(t)
  const burst = 20
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }], {
    limits: { messagesPerSecond: 1, burst }
  }))
  await backend.next('hello')
  const before = await connect(gateway.url('/lobby'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  for (let i = 0; i < burst; i++) before.ws.send(`a${i}`)
  for (let i = 0; i < burst; i++) await backend.next('message', 'alice')
  before.ws.close(1000)
  await backend.next('close', 'alice')
  const after = await connect(gateway.url('/lobby'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  for (let i = 0; i < burst; i++) after.ws.send(`b${i}`)
  // a fresh bucket would let all of them through; the user's spent one closes the socket first
  const outcome = await backend.events.next((e) => e.user === 'alice' && (e.event === 'close' || e.data === `b${burst - 1}`), 30000, 'the close or the last message')
  t.match(outcome, { event: 'close', code: 1008, reason: 'rate limit exceeded' }, 'the spent bucket closes alice (1008) before her second burst is through')
  // without a close there is nothing more to wait for: the failure above says so
  if (outcome.event === 'close') t.same(await after.closed, { code: 1008, reason: 'rate limit exceeded' }, "alice's new socket is closed with 1008 rate limit exceeded")
})

t.test('rate buckets are forgotten once full again, not before', async (t) => {
  const buckets = new RateBuckets(10, 5)
  for (let i = 0; i < 5; i++) t.ok(buckets.take('alice', 0), `a full bucket gives take ${i + 1} of its burst of 5`)
  t.notOk(buckets.take('alice', 0), 'spent')
  buckets.sweep(100)
  t.equal(buckets.size, 1, 'one token back of five: kept')
  t.notOk(buckets.take('alice', 50), 'still spent half a token later')
  buckets.sweep(600)
  t.equal(buckets.size, 0, 'full again after 0.5 s at 10/s: forgotten')
})

t.test('listen() without options takes server.host and server.port from the config', async (t) => {
  const backend = await backendFor(t)
  const port = await freePort()
  const app = await createGateway(testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }], {
    server: { host: '127.0.0.1', port, shutdownTimeoutMs: 3000 },
    log: { level: 'warn' }
  }))
  t.teardown(() => app.close())
  await app.listen()
  t.same(app.server.address(), { address: '127.0.0.1', family: 'IPv4', port }, 'it listens on server.host and server.port')
  t.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, 'and answers on that port')
})

/** A player speaking raw WebSocket over TCP, to send frames no client library would. */
class RawPlayer {
  private received = Buffer.alloc(0)
  private readonly arrived: Array<() => void> = []

  private constructor (readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk])
      for (const wake of this.arrived.splice(0)) wake()
    })
    socket.on('end', () => { for (const wake of this.arrived.splice(0)) wake() })
    // the gateway may end the connection while frames are still being written
    socket.on('error', () => {})
  }

  static async open (port: number, path: string, token: string): Promise<RawPlayer> {
    const socket = tcpConnect(port, '127.0.0.1')
    await once(socket, 'connect')
    const player = new RawPlayer(socket)
    socket.write([
      `GET ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13',
      `Authorization: Bearer ${token}`, '', ''
    ].join('\r\n'))
    const head = await player.until((data) => {
      const end = data.indexOf('\r\n\r\n')
      return end < 0 ? undefined : end + 4
    })
    if (!head.toString().startsWith('HTTP/1.1 101')) throw new Error(`handshake refused: ${head.toString()}`)
    return player
  }

  /** Waits for the server's close frame: its code and reason. */
  async closeFrame (timeoutMs = 10000): Promise<{ code: number, reason: string }> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no close frame within ${timeoutMs} ms`)), timeoutMs)
    })
    try {
      return await Promise.race([this.readClose(), timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  private async readClose (): Promise<{ code: number, reason: string }> {
    for (;;) {
      const frame = await this.until((data) => {
        if (data.length < 2) return undefined
        const length = data[1] & 0x7f
        const header = length === 126 ? 4 : 2
        if (data.length < header) return undefined
        const size = header + (length === 126 ? data.readUInt16BE(2) : length)
        return data.length < size ? undefined : size
      })
      if ((frame[0] & 0x0f) !== 0x8) continue
      const payload = frame.subarray((frame[1] & 0x7f) === 126 ? 4 : 2)
      return { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString() }
    }
  }

  /** Consumes the first `take(received)` bytes once that says how many. */
  private async until (take: (data: Buffer) => number | undefined): Promise<Buffer> {
    for (;;) {
      const size = take(this.received)
      if (size !== undefined) {
        const out = this.received.subarray(0, size)
        this.received = this.received.subarray(size)
        return out
      }
      if (this.socket.readableEnded) throw new Error('connection ended before the frame arrived')
      await new Promise<void>((resolve) => this.arrived.push(resolve))
    }
  }
}

interface FrameSpec {
  opcode: number
  payload?: Buffer
  fin?: boolean
  rsv1?: boolean
  masked?: boolean
}

/** One client frame as RFC 6455 lays it out (masked unless told otherwise). */
function frame ({ opcode, payload = Buffer.alloc(0), fin = true, rsv1 = false, masked = true }: FrameSpec): Buffer {
  const first = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode
  const maskBit = masked ? 0x80 : 0
  let header: Buffer
  if (payload.length < 126) {
    header = Buffer.from([first, maskBit | payload.length])
  } else {
    header = Buffer.from([first, maskBit | 126, 0, 0])
    header.writeUInt16BE(payload.length, 2)
  }
  if (!masked) return Buffer.concat([header, payload])
  const mask = randomBytes(4)
  const body = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]))
  return Buffer.concat([header, mask, body])
}

/** A frame header announcing `length` bytes with a 64-bit length; no payload follows. */
function longHeader (length: bigint): Buffer {
  const header = Buffer.alloc(10)
  header[0] = 0x82
  header[1] = 0x80 | 127
  header.writeBigUInt64BE(length, 2)
  return header
}

function closePayload (code: number, reason: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(2)
  out.writeUInt16BE(code)
  return Buffer.concat([out, reason])
}

/** Each protocol error `ws` detects, the bytes that trigger it, and the code `ws` closes with. */
const VIOLATIONS: Array<{ name: string, bytes: () => Buffer, code: number }> = [
  { name: 'frame header of 2^53 bytes', bytes: () => longHeader(2n ** 53n), code: 1009 },
  { name: 'frame over maxPayload', bytes: () => longHeader(1n << 20n), code: 1009 },
  {
    name: 'message in 300 fragments',
    bytes: () => Buffer.concat([frame({ opcode: 0x1, payload: Buffer.from('a'), fin: false }), ...Array.from({ length: 299 }, () => frame({ opcode: 0x0, payload: Buffer.from('a'), fin: false }))]),
    code: 1008
  },
  { name: 'text that is not UTF-8', bytes: () => frame({ opcode: 0x1, payload: Buffer.from([0xc3, 0x28]) }), code: 1007 },
  { name: 'RSV1 without an extension', bytes: () => frame({ opcode: 0x1, payload: Buffer.from('a'), rsv1: true }), code: 1002 },
  { name: 'reserved opcode', bytes: () => frame({ opcode: 0x3 }), code: 1002 },
  { name: 'unmasked frame', bytes: () => frame({ opcode: 0x1, payload: Buffer.from('a'), masked: false }), code: 1002 },
  { name: 'fragmented ping', bytes: () => frame({ opcode: 0x9, fin: false }), code: 1002 },
  { name: 'ping over 125 bytes', bytes: () => frame({ opcode: 0x9, payload: Buffer.alloc(126) }), code: 1002 },
  { name: 'continuation of nothing', bytes: () => frame({ opcode: 0x0, payload: Buffer.from('a') }), code: 1002 },
  { name: 'new message inside a fragmented one', bytes: () => Buffer.concat([frame({ opcode: 0x1, payload: Buffer.from('a'), fin: false }), frame({ opcode: 0x1, payload: Buffer.from('b') })]), code: 1002 },
  { name: 'close code 1005 on the wire', bytes: () => frame({ opcode: 0x8, payload: closePayload(1005) }), code: 1002 },
  { name: 'close reason that is not UTF-8', bytes: () => frame({ opcode: 0x8, payload: closePayload(1000, Buffer.from([0xff])) }), code: 1007 }
]

t.test('a protocol error: the backend is told the code and reason the player got', async (t) => {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }]))
  await backend.next('hello')
  for (const [i, violation] of VIOLATIONS.entries()) {
    const user = `raw-${i}`
    const player = await RawPlayer.open(gateway.port, '/lobby', tokenFor(user))
    t.teardown(() => player.socket.destroy())
    await backend.next('open', user)
    player.socket.write(violation.bytes())
    const got = await player.closeFrame()
    const told = await backend.next('close', user)
    t.equal(got.code, violation.code, `${violation.name}: ws's code reaches the player`)
    t.not(got.reason, '', `${violation.name}: the player is given a reason`)
    t.same({ code: told.code, reason: told.reason }, got, `${violation.name}: the backend's close event says the same`)
  }
})
