/**
 * backend.mask (docs/configuration.md): the link's frames are masked with a
 * random key by default, as RFC 6455 asks of a client; `false` writes an
 * all-zero key, so the gateway neither XORs nor copies what it writes. Read
 * off the wire by a backend that speaks the handshake itself and looks at
 * the first frame's bytes.
 */
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type Socket } from 'node:net'
import t from 'tap'
import { parseConfig, ConfigError } from '../src/index.js'
import { connect } from './helpers/client.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { gatewayWithBackends } from './helpers/setup.js'
import { tokenFor } from './helpers/tokens.js'
import { Inbox } from './helpers/waiter.js'

interface WireFrame { masked: boolean, key: Buffer, payload: string }

/** A backend on a raw TCP socket: answers the upgrade, then reports each link's first frame as it was on the wire. */
async function wireBackend (t: { teardown (fn: () => unknown): void }): Promise<{ url: string, firsts: Inbox<WireFrame>, sockets: Inbox<Socket> }> {
  const firsts = new Inbox<WireFrame>()
  const sockets = new Inbox<Socket>()
  const open = new Set<Socket>()
  const server = createServer((socket) => {
    open.add(socket)
    socket.on('close', () => open.delete(socket))
    socket.on('error', () => {})
    let buffered = Buffer.alloc(0)
    let upgraded = false
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      if (!upgraded) {
        const end = buffered.indexOf('\r\n\r\n')
        if (end < 0) return
        const key = /sec-websocket-key: *(\S+)/i.exec(buffered.subarray(0, end).toString())?.[1] ?? ''
        const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
        upgraded = true
        buffered = buffered.subarray(end + 4)
        sockets.push(socket)
      }
      if (buffered.length < 2) return
      const masked = (buffered[1] & 0x80) !== 0
      const length7 = buffered[1] & 0x7f
      const lengthBytes = length7 === 126 ? 2 : length7 === 127 ? 8 : 0
      const head = 2 + lengthBytes + (masked ? 4 : 0)
      if (buffered.length < head) return
      const length = lengthBytes === 2 ? buffered.readUInt16BE(2) : lengthBytes === 8 ? Number(buffered.readBigUInt64BE(2)) : length7
      if (buffered.length < head + length) return
      const key = masked ? Buffer.from(buffered.subarray(2 + lengthBytes, head)) : Buffer.alloc(0)
      const payload = Buffer.from(buffered.subarray(head, head + length))
      for (let i = 0; i < payload.length && masked; i++) payload[i] ^= key[i % 4]
      firsts.push({ masked, key, payload: payload.toString() })
      // only the first frame of each link is read
      buffered = Buffer.alloc(0)
      socket.removeAllListeners('data')
      socket.resume()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise((resolve) => {
    server.close(resolve)
    for (const socket of open) socket.destroy()
  }))
  return { url: `ws://127.0.0.1:${(server.address() as { port: number }).port}/link`, firsts, sockets }
}

function problemsOf (mask: unknown): string {
  try {
    parseConfig({ auth: { secret: 's' }, endpoints: [{ name: 'lobby', path: '/lobby', backend: { url: 'ws://127.0.0.1:4001', mask } }] }, {})
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.join('\n')
    throw err
  }
  return ''
}

t.test('mask defaults to true, and anything but a boolean is refused by name', async (t) => {
  const config = parseConfig({ auth: { secret: 's' }, endpoints: [{ name: 'lobby', path: '/lobby', backend: { url: 'ws://127.0.0.1:4001' } }] }, {})
  t.equal(config.endpoints[0].backend.mask, true, 'links are masked unless configured otherwise')
  t.match(problemsOf('no'), /endpoints\[0\]\.backend\.mask|endpoints\/0\/backend\/mask/, 'a string is refused, naming the field')
  t.match(problemsOf(0), /backend.mask/, 'a number is refused, naming the field')
})

for (const mask of [true, false]) {
  t.test(`mask ${String(mask)}: the hello on the wire is masked with ${mask ? 'a random' : 'an all-zero'} key`, async (t) => {
    const backend = await wireBackend(t)
    await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: { url: backend.url, mask, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }]))
    const first = await backend.firsts.next(undefined, 10000, 'the first frame of the link')
    t.ok(first.masked, 'the frame has the mask bit set, as every client frame must')
    t.equal(JSON.parse(first.payload).event, 'hello', 'the frame, unmasked with its own key, is the hello')
    if (mask) t.not(first.key.readUInt32BE(0), 0, 'the key is not all zeros (a random key is zero once in 2^32)')
    else t.same([...first.key], [0, 0, 0, 0], 'the key is all zeros: the payload went out as written')
  })
}

t.test('mask false: a backend that answers with a malformed frame gets the link dropped and redialled, still unmasked', async (t) => {
  const backend = await wireBackend(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: { url: backend.url, mask: false, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }]))
  await backend.firsts.next(undefined, 10000, 'the first link')
  const socket = await backend.sockets.next(undefined, 10000, 'the first link socket')
  // FIN + reserved opcode 0x3 with RSV bits: no WebSocket peer may send it
  socket.write(Buffer.from([0xf3, 0x00]))
  const again = await backend.firsts.next(undefined, 10000, 'the redialled link')
  t.equal(JSON.parse(again.payload).event, 'hello', 'the gateway dialled again and said hello')
  t.same([...again.key], [0, 0, 0, 0], 'the redialled link is unmasked too')
  t.ok(gateway.logs.some((l) => /backend link/i.test(l)), 'the dropped link was logged')
})

t.test('mask false: players and backend talk both ways through an unmasked link, and a wrong token is still refused', async (t) => {
  const { gateway, backends } = await gatewayWithBackends(t, [{ name: 'lobby', path: '/lobby', link: { mask: false, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }])
  const client = await connect(gateway.url('/lobby'), { token: tokenFor('ann') })
  await backends.lobby.next('open', 'ann')
  client.ws.send('{"move":"e4"}')
  const message = await backends.lobby.next('message', 'ann')
  t.same(message.data, { move: 'e4' }, 'the backend read the message through the unmasked link')
  backends.lobby.send({ action: 'send', user: 'ann', data: { ok: true } })
  t.equal(await client.next(), '{"ok":true}', 'the answer reached the player')
  await t.rejects(connect(gateway.url('/lobby'), { token: 'not-a-jwt' }), /HTTP 401/, 'a malformed token is refused with 401')
  client.ws.close()
})
