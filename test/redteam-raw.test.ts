/**
 * Red team of the raw link encoding (`backend.encoding: "raw"`, PROTOCOL.md
 * §2a) and of `backend.mask: false`, from outside, over real sockets: hostile
 * players (some speaking WebSocket frames by hand on a TCP socket), hostile
 * backends writing records by hand from the layout in PROTOCOL.md, and
 * hostile gateways against the SDK. Tests marked "broke" failed before their
 * fix; "held" ones pin behaviour the code already had.
 */
import { once } from 'node:events'
import { connect as tcpConnect, type Socket } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { WebSocket } from 'ws'
import { GatehouseBackend } from '../src/sdk/index.js'
import { BACKEND_TOKEN, captureLogger } from './sdk-fixtures.js'
import { eventually } from './helpers/cluster.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { upgradeRequest } from './helpers/raw-http.js'
import { tokenFor } from './helpers/tokens.js'
import { Inbox } from './helpers/waiter.js'
import { aliceAndBobOnTwoNodes, player, rawEndpoint } from './helpers/raw-players.js'
import { JSON_RECORD, MESSAGE, SEND, TEXT, TEXT_SEND, handBackend, jsonRecord, parseRecords, record, sendRecord, textRecord, textSend } from './helpers/records.js'

t.setTimeout(180_000)

// memory is measured after a full collection
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/**
 * A client frame by hand: FIN, the opcode (1 text, 2 binary), the mask bit
 * with an all-zero key (so the payload goes as it is), and the length as
 * RFC 6455 §5.2 writes it. `declared` may claim more than `payload` holds:
 * the rest of the frame is then never sent.
 */
function clientFrame (opcode: number, payload: Buffer, declared = payload.length): Buffer {
  const length = declared < 126 ? Buffer.from([0x80 | declared]) : declared < 65536 ? Buffer.from([0x80 | 126, declared >> 8, declared & 0xff]) : Buffer.from([0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0])
  if (declared >= 65536) length.writeUInt32BE(declared, 5)
  return Buffer.concat([Buffer.from([0x80 | opcode]), length, Buffer.alloc(4), payload])
}

/** A player on a bare TCP socket: the upgrade by hand, then whatever bytes the test writes. */
async function tcpPlayer (port: number, path: string, user: string): Promise<Socket> {
  const socket = tcpConnect(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.write(upgradeRequest(path, `Authorization: Bearer ${tokenFor(user)}\r\n`))
  let head = ''
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      socket.off('data', onData)
      if (head.startsWith('HTTP/1.1 101')) resolve()
      else reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`))
    }
    socket.on('data', onData)
  })
  return socket
}

/** Memory growth over `before` once what is only in flight has gone (a few collections). */
async function settledGrowth (before: number, bound: number): Promise<number> {
  return await eventually(async () => {
    await new Promise((resolve) => setTimeout(resolve, 50))
    gc()
    return process.memoryUsage().arrayBuffers - before
  }, (n) => n < bound, 5000, 'memory to settle').catch(() => process.memoryUsage().arrayBuffers - before)
}

t.test('broke: a player\'s tiny frame read in one TCP chunk with 60 KiB of a frame it never finished pinned the chunk in the event queue (counted as a few bytes of queue.maxBytes)', async (t) => {
  for (const [kind, opcode] of [['text', 1], ['binary', 2]] as const) {
    await t.test(`a ${kind} frame`, async (t) => {
      const backend = await handBackend(t, { timeoutMs: 15000 })
      // acks with a backend that never acks: every event stays queued, as it would through an outage
      const gateway = await startGateway(t, testConfig([rawEndpoint(backend.url, { acks: true })]))
      await backend.next('sync')
      const PLAYERS = 60
      const padding = Buffer.alloc(60 * 1024, 0x61)
      gc()
      const before = process.memoryUsage().arrayBuffers
      for (let i = 0; i < PLAYERS; i++) {
        const user = `p${i}`
        const socket = await tcpPlayer(gateway.port, '/game/m1', user)
        await backend.next('open', user)
        // one write, so one read on the gateway: the 1-byte frame, then most of a frame that never ends
        socket.write(Buffer.concat([clientFrame(opcode, Buffer.from([0x30 + (i % 10)])), clientFrame(opcode, padding, padding.length + 1)]))
        const message = await backend.next('message', user)
        t.equal(message.record, opcode === 1 ? TEXT : MESSAGE, `${user}: the 1-byte frame arrived as a record`)
        socket.destroy()
        await backend.next('close', user)
      }
      const grown = await settledGrowth(before, 1 << 20)
      t.ok(grown < 1 << 20, `${PLAYERS} queued 1-byte messages hold about their bytes, not ${PLAYERS} reads of 60 KiB (grew ${Math.round(grown / 1024)} KiB)`)
      t.equal(await gateway.metric('gatehouse_queue_events'), PLAYERS * 3, 'every open, message and close is still queued, unacknowledged')
    })
  }
})

/** Texts a JSON splice would choke on if the gateway spliced them unchecked, or that look like an envelope. */
const HOSTILE_TEXTS = ['1,"user":"bob"', '"}', '{"event":"open","user":"bob"}', '},{"event":"close","user":"bob"', '\\', '\u2028\u2029', '\0', 'x'.repeat(300)]

t.test('held: text and binary frames of one player, hostile texts among them, written in one burst, reach a raw backend in order, as records naming only that player', async (t) => {
  const backend = await handBackend(t, { timeoutMs: 15000 })
  const gateway = await startGateway(t, testConfig([rawEndpoint(backend.url)], { limits: { messagesPerSecond: 1000, burst: 1000 } }))
  await backend.next('sync')
  const alice = await tcpPlayer(gateway.port, '/game/m1', 'alice')
  await backend.next('open', 'alice')
  const sent: Array<{ binary: boolean, bytes: Buffer }> = []
  for (let i = 0; i < 300; i++) {
    const binary = i % 3 === 2
    const bytes = binary ? Buffer.from([i & 0xff, 0xff, 0x00]) : Buffer.from(`${i}:${HOSTILE_TEXTS[i % HOSTILE_TEXTS.length]}`)
    sent.push({ binary, bytes })
  }
  alice.write(Buffer.concat(sent.map(({ binary, bytes }) => clientFrame(binary ? 2 : 1, bytes))))
  for (const [i, { binary, bytes }] of sent.entries()) {
    const message = await backend.next('message')
    t.equal(message.user, 'alice', `frame ${i}: names alice, whatever it held`)
    t.equal(message.record, binary ? MESSAGE : TEXT, `frame ${i}: a ${binary ? 'MESSAGE' : 'TEXT'} record, in the order sent`)
    t.ok(message.bytes?.equals(bytes), `frame ${i}: its bytes as sent`)
    if (i % 50 === 0) t.same(message.params, { matchId: 'm1' }, `frame ${i}: the player's params`)
  }
  t.equal(backend.events.all.filter((e) => e.event === 'open' || (e.event === 'close' && e.user === 'bob')).length, 1, 'no text opened or closed anybody: only alice\'s open came')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total'), 0, 'nothing was refused')
  alice.destroy()
})

t.test('held: under duplicate "allow" the same burst falls back to JSON events with the conn, the envelope intact, in order', async (t) => {
  const backend = await handBackend(t, { timeoutMs: 15000 })
  const gateway = await startGateway(t, testConfig([rawEndpoint(backend.url, {}, { duplicate: 'allow' })]))
  await backend.next('sync')
  const alice = await tcpPlayer(gateway.port, '/game/m1', 'alice')
  const open = await backend.next('open', 'alice')
  t.type(open.conn, 'string', 'the open carries a conn')
  const texts = HOSTILE_TEXTS.map((text, i) => `${i}${text}`)
  alice.write(Buffer.concat([...texts.map((text) => clientFrame(1, Buffer.from(text))), clientFrame(2, Buffer.from([1, 2, 3])), clientFrame(1, Buffer.from('{"user":"bob","conn":"x"}'))]))
  // named by index: a U+2028 in an assertion's name would break the TAP line it is reported on
  for (const [i, text] of texts.entries()) {
    const message = await backend.next('message')
    t.equal(message.record, undefined, `text ${i}: a JSON event, not a record (a record names no conn)`)
    t.equal(message.user, 'alice', `text ${i}: names alice`)
    t.equal(message.conn, open.conn, `text ${i}: with alice's conn`)
    t.equal(message.data, text, `text ${i}: not JSON, so its data is the text as a string`)
  }
  const binary = await backend.next('message')
  t.ok(binary.binary === true && binary.data === Buffer.from([1, 2, 3]).toString('base64'), 'the binary frame, in its place, as base64 JSON')
  const forged = await backend.next('message')
  t.same([forged.user, forged.conn, forged.data], ['alice', open.conn, { user: 'bob', conn: 'x' }], 'a text that is JSON naming another user and conn is only data')
  alice.destroy()
})

t.test('held: a player\'s invalid UTF-8 text ends it with 1007, a text past maxPayloadBytes with 1009; neither reaches the backend', async (t) => {
  const backend = await handBackend(t, { timeoutMs: 15000 })
  const gateway = await startGateway(t, testConfig([rawEndpoint(backend.url)], { limits: { maxPayloadBytes: 1024 } }))
  await backend.next('sync')
  for (const [user, frame, code] of [['alice', clientFrame(1, Buffer.from([0x68, 0xc3, 0x28])), 1007], ['bob', clientFrame(1, Buffer.alloc(1025, 0x61)), 1009]] as const) {
    const socket = await tcpPlayer(gateway.port, '/game/m1', user)
    await backend.next('open', user)
    socket.write(Buffer.concat([clientFrame(1, Buffer.from('before')), frame, clientFrame(1, Buffer.from('after'))]))
    const before = await backend.next('message', user)
    t.equal(before.bytes?.toString(), 'before', `${user}: the frame before the bad one arrives`)
    const close = await backend.next('close', user)
    t.equal(close.code, code, `${user}: closed with ${code}`)
    t.notOk(backend.events.all.some((e) => e.event === 'message' && e.user === user && e.bytes?.toString() !== 'before'), `${user}: neither the bad frame nor the one after it reached the backend`)
    socket.destroy()
  }
})

t.test('held: one backend frame of 100,000 tiny TEXT_SENDs, with JSON sends and SEND records among them, reaches the player in order, each as its kind', async (t) => {
  const backend = await handBackend(t, { timeoutMs: 15000 })
  const gateway = await startGateway(t, testConfig([rawEndpoint(backend.url)], { limits: { maxBufferedBytes: 64 * 1024 * 1024 } }))
  await backend.next('sync')
  const alice = await player(gateway.url('/game/m1'), 'alice')
  await backend.next('open', 'alice')
  const COUNT = 100000
  const records: Buffer[] = []
  for (let i = 0; i < COUNT; i++) {
    if (i % 1000 === 500) records.push(jsonRecord({ action: 'send', user: 'alice', data: `j${i}` }))
    else if (i % 1000 === 999) records.push(sendRecord(SEND, ['alice'], Buffer.from(`b${i}`)))
    else records.push(textSend(i % 2 === 0 ? ['alice'] : 'all', String(i)))
  }
  backend.send(Buffer.concat(records))
  // the last record is a SEND: once it is here, every frame before it has come (taken as a whole, not one by one)
  await alice.frames.next((f) => f.binary && f.bytes.toString() === `b${COUNT - 1}`, 60000, 'the last frame')
  const frames = alice.frames.all
  t.equal(frames.length, COUNT, 'every frame arrived')
  let inOrder = 0
  let kinds = 0
  for (const [i, frame] of frames.entries()) {
    const expected = i % 1000 === 500 ? `j${i}` : i % 1000 === 999 ? `b${i}` : String(i)
    if (frame.bytes.toString() === expected) inOrder++
    if (frame.binary === (i % 1000 === 999)) kinds++
  }
  t.equal(inOrder, COUNT, 'every frame arrived, in the order of the records')
  t.equal(kinds, COUNT, 'TEXT_SEND and JSON sends as text frames, SEND records as binary frames')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total'), 0, 'nothing was refused')
})

t.test('held: a refresh in the middle of a raw stream: the old socket\'s text reaches the backend before the new one\'s, and TEXT_SENDs of the switch reach the new socket in order, as text', async (t) => {
  const backend = await handBackend(t, { timeoutMs: 15000 })
  const gateway = await startGateway(t, testConfig([rawEndpoint(backend.url)]))
  await backend.next('sync')
  const old = await tcpPlayer(gateway.port, '/game/m1', 'alice')
  await backend.next('open', 'alice')
  const fromServer = new Inbox<Buffer>()
  old.on('data', (chunk: Buffer) => fromServer.push(chunk))
  old.write(clientFrame(1, Buffer.from('o1')))
  t.equal((await backend.next('message', 'alice')).bytes?.toString(), 'o1', 'the old socket\'s first text')
  const fresh = await player(gateway.url('/game/m1?refresh=1'), 'alice')
  // the old socket is told 4410, and (never answering that close) stays read until the switch times out
  const close = await fromServer.next((chunk) => chunk[0] === 0x88, 15000, 'the close frame on the old socket')
  t.equal(close.readUInt16BE(2), 4410, 'the old socket is closed with 4410')
  backend.send(Buffer.concat([textSend(['alice'], 'k1'), jsonRecord({ action: 'send', user: 'alice', data: 'k2' }), textSend('all', 'k3')]))
  fresh.ws.send('n1')
  old.write(clientFrame(1, Buffer.from('o2')))
  t.equal((await backend.next('message', 'alice')).bytes?.toString(), 'o2', 'the old socket\'s text after the close is still carried, before the new socket\'s')
  old.destroy()
  for (const expected of ['k1', 'k2', 'k3']) {
    const frame = await fresh.frames.next(undefined, 15000, expected)
    t.same([frame.binary, frame.bytes.toString()], [false, expected], `${expected}: kept through the switch, then on the new socket as text, in order`)
  }
  t.equal((await backend.next('message', 'alice')).bytes?.toString(), 'n1', 'the new socket\'s text comes after the switch')
  t.notOk(backend.events.all.some((e) => e.event === 'close'), 'the backend saw no close')
})

t.test('held: a cluster: TEXT_SENDs via node A for a session held on node B are kept there and reach it on resume as text, in order; a 1 MiB TEXT_SEND to all crosses the bus', async (t) => {
  const backend = await handBackend(t, { timeoutMs: 15000 })
  const { b, alice, bob } = await aliceAndBobOnTwoNodes(t, backend, rawEndpoint(backend.url, {}, { resumeGraceMs: 30000 }))
  const big = 'é'.repeat(512 * 1024)
  backend.sendVia('node-a', textSend('all', big))
  for (const [who, client] of [['alice', alice], ['bob', bob]] as const) {
    const frame = await client.frames.next(undefined, 15000, `the big send to ${who}`)
    t.ok(!frame.binary && frame.bytes.equals(Buffer.from(big)), `${who} gets the 1 MiB TEXT_SEND to all as text, byte for byte`)
  }
  bob.ws.terminate()
  await b.run.lines.next((l) => /holding its session for a resume/.test(String(l.msg)), 15000, 'bob held on node B')
  const texts = ['{"n":1}', 'two ✓', '', '"four"']
  backend.sendVia('node-a', Buffer.concat(texts.map((text) => textSend(['bob'], text))))
  // node B has taken the send to all and the four for bob
  await eventually(async () => await b.metric('gatehouse_cluster_forwards_total', { direction: 'in' }), (n) => n >= 1 + texts.length, 15000, 'node B took the forwards')
  const again = await player(b.url('/game/m1'), 'bob')
  for (const [i, text] of texts.entries()) {
    const frame = await again.frames.next(undefined, 15000, `kept text ${i}`)
    t.same([frame.binary, frame.bytes.toString()], [false, text], `kept text ${i}: reaches the resumed bob as text, in order`)
  }
  t.equal(backend.events.all.filter((e) => e.event === 'close' && e.user === 'bob').length, 0, 'bob\'s session was resumed, never closed')
  t.equal(await b.metric('gatehouse_backend_frame_errors_total'), 0, 'node B refused nothing')
})

// ---- the SDK against a real gateway ----

t.test('broke: an SDK send of base64 text with `binary: true` reached players as the base64 characters, not the bytes, on binary and raw links', async (t) => {
  const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff])
  const backend: GatehouseBackend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, {
    onMessage (user, data) {
      if (data === 'one') backend.send(user, bytes.toString('base64'), { binary: true })
      else if (data === 'all') backend.broadcast(bytes.toString('base64'), { binary: true })
      else backend.send(user, bytes)
    }
  })
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  const link = (encoding: string): Record<string, unknown> => ({ url, token: BACKEND_TOKEN, encoding, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 })
  const gateway = await startGateway(t, testConfig(['json', 'binary', 'raw'].map((encoding) => ({ name: encoding, path: `/${encoding}/:matchId`, backend: link(encoding) }))))
  await eventually(async () => await gateway.metric('gatehouse_link_up'), (n) => n === 3, 15000, 'three links up')
  for (const encoding of ['json', 'binary', 'raw']) {
    const alice = await player(gateway.url(`/${encoding}/m1`), 'alice')
    for (const ask of ['one', 'all', 'buffer']) {
      alice.ws.send(ask)
      const frame = await alice.frames.next(undefined, 15000, `${encoding} ${ask}`)
      t.ok(frame.binary && frame.bytes.equals(bytes), `${encoding} link, ${ask}: the player gets the bytes as a binary frame (got ${frame.binary ? 'binary' : 'text'} ${JSON.stringify(frame.bytes.toString())})`)
    }
    alice.ws.close()
    await alice.closed
  }
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total'), 0, 'the gateway refused nothing')
})

t.test('held: mask false on a raw link with acks: an SDK echoes 60 KiB texts and binaries byte for byte through the unmasked link', async (t) => {
  const backend: GatehouseBackend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, {
    onMessage (user, data, { binary }) {
      backend.send(user, binary ? data as Buffer : data)
    }
  })
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  const gateway = await startGateway(t, testConfig([{ name: 'game', path: '/game/:matchId', backend: { url, token: BACKEND_TOKEN, encoding: 'raw', mask: false, acks: true, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }]))
  await eventually(async () => await gateway.metric('gatehouse_link_up'), (n) => n === 1, 15000, 'the link up')
  const alice = await player(gateway.url('/game/m1'), 'alice')
  const text = 'ü'.repeat(30 * 1024)
  const bytes = Buffer.alloc(60 * 1024, 0xa5)
  alice.ws.send(text)
  alice.ws.send(bytes)
  const first = await alice.frames.next(undefined, 15000, 'the text echo')
  t.ok(!first.binary && first.bytes.equals(Buffer.from(text)), 'the 60 KiB text comes back as text, byte for byte')
  const second = await alice.frames.next(undefined, 15000, 'the binary echo')
  t.ok(second.binary && second.bytes.equals(bytes), 'the 60 KiB binary comes back as binary, byte for byte')
  t.equal(backend.stats.badFrames, 0, 'the SDK refused nothing from the unmasked link')
  await eventually(async () => await gateway.metric('gatehouse_queue_events'), (n) => n === 0, 15000, 'every event acknowledged')
})

t.test('held: a hostile gateway against the SDK: TEXT records with bad params and user ids are counted and skipped, none pollutes a prototype, and a later hello without raw turns TEXT_SENDs back into JSON', async (t) => {
  const received = new Inbox<{ user: string, data: unknown, params: unknown }>()
  const backend: GatehouseBackend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, {
    onMessage (user, data, { params }) {
      received.push({ user, data, params })
      backend.send(user, data)
    }
  })
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${BACKEND_TOKEN}` } })
  const replies = new Inbox<{ binary: boolean, bytes: Buffer }>()
  ws.on('message', (data: Buffer, binary) => replies.push({ binary, bytes: Buffer.from(data) }))
  ws.on('error', () => {})
  await once(ws, 'open')
  t.teardown(() => ws.terminate())
  const hello = { event: 'hello', gateway: 'gw', endpoint: 'game', session: 's1', protocol: 1, encoding: 'raw' }
  ws.send(JSON.stringify([hello, { event: 'sync', users: [] }, { event: 'open', user: 'alice', claims: {}, params: {} }]))
  const bad: Array<[string, Buffer]> = [
    ['binary_invalid_record', textRecord('alice', 'x', '[]')],
    ['binary_invalid_record', textRecord('alice', 'x', '{"a":1}')],
    ['binary_invalid_record', textRecord('alice', 'x', 'not json')],
    ['binary_invalid_record', textRecord('alice', 'x', '{"__proto__":{"polluted":"yes"}}')],
    ['binary_invalid_record', textRecord('', 'x')],
    ['binary_invalid_record', record(TEXT, Buffer.concat([Buffer.alloc(6), Buffer.from([0, 2, 0xc3, 0x28, 0, 2]), Buffer.from('{}x')]))]
  ]
  ws.send(Buffer.concat(bad.map(([, frame]) => frame)))
  ws.send(Buffer.concat([
    textRecord('alice', '{"__proto__":{"polluted":"yes"}}', '{"__proto__":"x","constructor":"y"}'),
    textRecord('alice', 'raw ✓')
  ]))
  const first = await received.next(undefined, 15000, 'the message with __proto__ keys')
  t.same(Object.keys(first.params as object), ['__proto__', 'constructor'], 'params with __proto__ and constructor keys are own string fields')
  t.equal(Object.getPrototypeOf(first.params), Object.prototype, 'and the params object keeps its prototype')
  t.equal(Object.getPrototypeOf(first.data), Object.prototype, 'data with a __proto__ key keeps its prototype')
  t.equal((await received.next(undefined, 15000, 'raw ✓')).data, 'raw ✓', 'the plain text after them is handed over')
  const echoes: Array<{ type: number, body: Buffer }> = []
  while (echoes.length < 2) {
    const reply = await replies.next(undefined, 15000, `echo ${echoes.length}`)
    t.ok(reply.binary, 'on a raw link the echoes come in a binary frame')
    echoes.push(...parseRecords(reply.bytes))
  }
  t.same(echoes.map((e) => e.type), [TEXT_SEND, TEXT_SEND], 'both echoes are TEXT_SEND records')
  t.ok(echoes[1].body.subarray(-Buffer.byteLength('raw ✓')).equals(Buffer.from('raw ✓')), 'the second carries the text as sent')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted by params or data')
  t.same(backend.stats.badFramesByKind, { binary_invalid_record: bad.length }, 'each bad record was counted by its kind')
  t.equal(received.all.filter((m) => m.data === 'x').length, 0, 'no bad record reached the handler')
  // the same link says hello again without raw (another session): text sends are JSON from there on
  ws.send(Buffer.concat([record(JSON_RECORD, Buffer.from(JSON.stringify([{ ...hello, session: 's2', encoding: 'binary' }, { event: 'sync', users: [{ user: 'alice', claims: {}, params: {} }] }]))), textRecord('alice', 'after')]))
  const after = await replies.next((r) => !r.binary || r.bytes[0] !== TEXT_SEND, 15000, 'the echo after the second hello')
  t.same([after.binary, after.bytes.toString()], [false, JSON.stringify({ action: 'send', user: 'alice', data: 'after' })], 'after a hello without raw a text send is a JSON action')
})
