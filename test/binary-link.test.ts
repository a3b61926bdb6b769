/**
 * The binary link encoding (`backend.encoding: "binary"`, PROTOCOL.md §2a):
 * a player's binary frame reaches the backend byte for byte in a binary link
 * frame, and a backend's binary `send` reaches the player the same way; with
 * acks and a replay, through the SDK, in a pool, and against hostile frames.
 * The raw backend here reads and writes records by hand, from the layout in
 * PROTOCOL.md, not with the codec under test.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { runBench } from './helpers/bench-run.js'
import { BACKEND_TOKEN, recordingService, type RecordingService } from './sdk-fixtures.js'
import { backendFor } from './helpers/backend.js'
import { startNode } from './helpers/cluster.js'
import { redisFor } from './helpers/redis.js'
import { connect, type TestClient } from './helpers/client.js'
import { startGateway, testConfig, type EndpointSpec } from './helpers/gateway.js'
import { tokenFor } from './helpers/tokens.js'
import { MESSAGE, SEND, TEXT, handBackend, jsonRecord, messageRecord, opening, record, sendRecord, sendBadFrames, standInGateway } from './helpers/records.js'

type Test = { teardown (fn: () => unknown): void }

// two gateway processes and Redis, and a smoke run of the bench, on a loaded 2-core machine
t.setTimeout(180_000)

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
const EMPTY = Buffer.alloc(0)

function binaryEndpoint (url: string, extra: Record<string, unknown> = {}): EndpointSpec {
  return { name: 'game', path: '/game/:matchId', backend: { url, encoding: 'binary', minReconnectDelayMs: 20, maxReconnectDelayMs: 200, ...extra } }
}

async function nextBinary (client: TestClient, what: string): Promise<Buffer> {
  const message = await client.messages.next(undefined, 10000, what)
  if (!Buffer.isBuffer(message)) throw new Error(`${what}: got a text frame ${message}`)
  return message
}

t.test('raw bytes both ways: all 256 byte values and an empty frame, byte for byte, no base64', async (t) => {
  const backend = await handBackend(t)
  const gateway = await startGateway(t, testConfig([binaryEndpoint(backend.url)]))
  const hello = await backend.next('hello')
  t.equal(hello.encoding, 'binary', 'hello announces the binary encoding')
  await backend.next('sync')
  const alice = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')

  alice.ws.send(ALL_BYTES)
  alice.ws.send(EMPTY)
  alice.ws.send('{"move":1}')
  const first = await backend.next('message', 'alice')
  const second = await backend.next('message', 'alice')
  const third = await backend.next('message', 'alice')
  t.ok(first.record === MESSAGE && second.record === MESSAGE, 'binary frames arrive as MESSAGE records')
  t.ok(first.bytes?.equals(ALL_BYTES), 'all 256 byte values arrive byte for byte')
  t.equal(second.bytes?.length, 0, 'an empty binary frame arrives as an empty record')
  t.same(first.params, { matchId: 'm1' }, 'the record carries the client\'s params, written by the gateway')
  t.equal(first.seq, undefined, 'no seq without acks (seq field 0)')
  t.same(third, { event: 'message', user: 'alice', params: { matchId: 'm1' }, data: { move: 1 } }, 'a text frame is a JSON event as in version 1, in order after the binary ones')
  const binaryFrames = backend.frames.all.filter((f) => f.binary)
  t.ok(binaryFrames.length >= 1, 'the link carried binary frames')
  t.notOk(backend.frames.all.some((f) => f.binary && f.bytes > 4096), 'no frame is inflated: nothing was base64')

  backend.send(sendRecord(SEND, ['alice'], ALL_BYTES))
  t.ok((await nextBinary(alice, 'the echo')).equals(ALL_BYTES), 'a SEND record reaches the player byte for byte')
  backend.send(sendRecord(SEND, ['alice'], EMPTY))
  t.equal((await nextBinary(alice, 'the empty frame')).length, 0, 'an empty SEND reaches the player as an empty binary frame')
  backend.send(Buffer.concat([jsonRecord({ action: 'send', user: 'alice', data: 'text first' }), sendRecord(SEND, 'all', Buffer.from([7, 0, 7]))]))
  t.equal(await alice.next(), 'text first', 'a JSON record in a binary frame is carried out first')
  t.ok((await nextBinary(alice, 'the all')).equals(Buffer.from([7, 0, 7])), 'then the SEND to all, in frame order')
  backend.send(JSON.stringify({ action: 'send', user: 'alice', data: ALL_BYTES.toString('base64'), binary: true }))
  t.ok((await nextBinary(alice, 'the base64 send')).equals(ALL_BYTES), 'a version 1 base64 send still works on a binary link')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total'), 0, 'no frame was refused')
})

t.test('send to many users from one record, each gets the same bytes', async (t) => {
  const backend = await handBackend(t)
  const gateway = await startGateway(t, testConfig([binaryEndpoint(backend.url)]))
  await backend.next('sync')
  const users = ['ann', 'bob', 'cé']
  const clients = await Promise.all(users.map(async (u) => await connect(gateway.url('/game/m1'), { token: tokenFor(u) })))
  for (const u of users) await backend.next('open', u)
  backend.send(sendRecord(SEND, [...users, 'nobody'], ALL_BYTES))
  for (const [i, client] of clients.entries()) t.ok((await nextBinary(client, users[i])).equals(ALL_BYTES), `${users[i]} got the bytes of the users record`)
  t.equal(await gateway.metric('gatehouse_dropped_actions_total', { reason: 'not_connected' }), 1, 'the user not connected is counted, as for JSON sends')
})

t.test('acks and a backend kill: unacknowledged raw messages are replayed with their seq and bytes', async (t) => {
  const backend = await handBackend(t)
  const gateway = await startGateway(t, testConfig([binaryEndpoint(backend.url, { acks: true })]))
  await backend.next('sync')
  const alice = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  const open = await backend.next('open', 'alice')
  t.equal(open.seq, 1, 'the open has seq 1')
  const payloads = [ALL_BYTES, EMPTY, Buffer.from([255, 0, 1])]
  for (const p of payloads) alice.ws.send(p)
  const got = [await backend.next('message'), await backend.next('message'), await backend.next('message')]
  t.same(got.map((e) => e.seq), [2, 3, 4], 'MESSAGE records carry seq 2, 3, 4')
  // the ack in a JSON record, then an echo: the echo arriving proves the ack was taken (actions run in frame order)
  backend.send(Buffer.concat([jsonRecord({ action: 'ack', seq: 2 }), sendRecord(SEND, ['alice'], Buffer.from('acked'))]))
  t.equal((await nextBinary(alice, 'the echo after the ack')).toString(), 'acked', 'the frame\'s actions ran')
  backend.kill()

  const sync = await backend.next('sync')
  t.equal(sync.seq, 2, 'the sync after the kill is as of the last ack')
  t.same((sync.users as Array<{ user: string }>).map((u) => u.user), ['alice'], 'alice is in it')
  const replayed = [await backend.next('message'), await backend.next('message')]
  t.same(replayed.map((e) => e.seq), [3, 4], 'the unacknowledged messages are replayed with their original seq')
  t.ok(replayed[0].bytes?.equals(EMPTY) && replayed[1].bytes?.equals(payloads[2]), 'with the same bytes')
  alice.ws.send(ALL_BYTES)
  const fresh = await backend.next('message')
  t.equal(fresh.seq, 5, 'a new message takes the next seq')
  t.ok(fresh.bytes?.equals(ALL_BYTES), 'byte for byte')
})

t.test('a held session keeps raw sends and delivers them byte for byte on resume', async (t) => {
  const backend = await handBackend(t)
  const gateway = await startGateway(t, testConfig([{ ...binaryEndpoint(backend.url), resumeGraceMs: 10000 }]))
  await backend.next('sync')
  const first = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  const bob = await connect(gateway.url('/game/m1'), { token: tokenFor('bob') })
  await backend.next('open', 'alice')
  await backend.next('open', 'bob')
  first.ws.terminate()
  await gateway.logged(/holding its session for a resume/)
  backend.send(sendRecord(SEND, ['alice'], ALL_BYTES))
  backend.send(sendRecord(SEND, ['alice'], EMPTY))
  backend.send(jsonRecord({ action: 'send', user: 'alice', data: 'marker' }))
  // actions of one link run in order: once bob has his, alice's three are kept
  backend.send(sendRecord(SEND, ['bob'], Buffer.from('bob')))
  t.equal((await nextBinary(bob, 'bob\'s send')).toString(), 'bob', 'the frames for alice were taken before bob\'s')
  const again = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  t.ok((await nextBinary(again, 'the kept 256 bytes')).equals(ALL_BYTES), 'the kept raw send arrives byte for byte after the resume')
  t.equal((await nextBinary(again, 'the kept empty frame')).length, 0, 'then the kept empty frame')
  t.equal(await again.next(), 'marker', 'then the text send, in order')
  t.equal(await gateway.metric('gatehouse_resumes_total'), 1, 'it was a resume')
  t.equal(backend.events.all.filter((e) => e.event === 'open' && e.user === 'alice').length, 1, 'the backend saw no second open of alice')
})

t.test('hostile binary frames from a backend are counted by kind; the link stays up', async (t) => {
  const backend = await handBackend(t)
  const gateway = await startGateway(t, testConfig([binaryEndpoint(backend.url)]))
  await backend.next('sync')
  const alice = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  const huge = Buffer.from([3, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])
  const hugeCount = record(3, Buffer.from([1, 0xff, 0xff, 0xff, 0xff, 0, 1]))
  const badUtf8 = record(3, Buffer.from([1, 0, 0, 0, 1, 0, 2, 0xc3, 0x28, 9]))
  const cases: Array<[string, Buffer]> = [
    ['binary_truncated', Buffer.alloc(0)],
    ['binary_truncated', Buffer.from([3, 0, 0])],
    ['binary_bad_length', huge],
    ['binary_bad_length', hugeCount],
    ['binary_bad_length', record(3, Buffer.from([1, 0, 0, 0, 1, 0, 50, 1]))],
    ['binary_unknown_record', record(9, Buffer.from('x'))],
    ['binary_unknown_record', record(2, Buffer.from('a message record is the gateway\'s to send'))],
    ['binary_invalid_record', record(3, Buffer.from([7, 1, 2]))],
    ['binary_invalid_record', record(3, Buffer.from([1, 0, 0, 0, 0]))],
    ['binary_invalid_record', badUtf8],
    ['binary_invalid_record', record(1, Buffer.from([0xff, 0xfe]))],
    ['invalid_json', record(1, Buffer.from('{not json'))],
    ['invalid_message', jsonRecord({ action: 'send', usr: 'alice', data: 1 })]
  ]
  const expected = await sendBadFrames(t, backend, gateway, cases)
  // a frame of 100,000 bad records: each counted, one log line, the rest of the frame still read
  backend.send(Buffer.concat([...Array.from({ length: 100000 }, () => Buffer.from([9, 0, 0, 0, 0])), sendRecord(SEND, ['alice'], Buffer.from('after many'))]))
  const many = await gateway.logged(/backend sent a bad frame/)
  t.equal(many.more, 100000 - 10, 'one log line: ten problems and the count of the rest')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { reason: 'binary_unknown_record' }), expected.binary_unknown_record + 100000, 'each of the 100,000 counted')
  t.equal((await nextBinary(alice, 'the send after 100,000 bad records')).toString(), 'after many', 'the good record at the end of that frame still runs')
  // an unknown record is skipped by its length: the records after it in the same frame still run
  backend.send(Buffer.concat([record(9, Buffer.from('?')), sendRecord(SEND, ['alice'], Buffer.from('still here'))]))
  t.equal((await nextBinary(alice, 'a send after the hostile frames')).toString(), 'still here', 'the link is up and carries on')
  t.equal(await gateway.metric('gatehouse_link_reconnects_total'), 0, 'the link was never dropped')
  t.equal(await gateway.metric('gatehouse_link_up'), 1, 'and is up')
})

t.test('a JSON endpoint is unchanged: no encoding in hello, base64 for binary, binary frames refused', async (t) => {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'game', path: '/game/:matchId', backend: backend.url }]))
  const hello = await backend.next('hello')
  t.notOk('encoding' in hello, 'hello has no encoding field')
  const alice = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  alice.ws.send(ALL_BYTES)
  const message = await backend.next('message', 'alice')
  t.equal(message.data, ALL_BYTES.toString('base64'), 'base64 in a JSON event, as in version 1')
  const [link] = backend.links.all
  link.socket.send(sendRecord(SEND, ['alice'], ALL_BYTES))
  await gateway.logged(/backend sent a binary frame/)
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { reason: 'binary_frame' }), 1, 'a binary frame is refused and counted as binary_frame')
})

t.test('a cluster: raw bytes for a user on another node are forwarded, and arrive byte for byte', async (t) => {
  const redis = await redisFor(t)
  const backend = await handBackend(t, { via: true })
  const endpoint = binaryEndpoint(backend.url)
  const [a, b] = await Promise.all([startNode(t, 'node-a', redis.url, [endpoint]), startNode(t, 'node-b', redis.url, [endpoint])])
  await backend.next('sync')
  await backend.next('sync')
  const alice = await connect(a.url('/game/m1'), { token: tokenFor('alice') })
  const bob = await connect(b.url('/game/m1'), { token: tokenFor('bob') })
  t.equal((await backend.next('open', 'bob')).via, 'node-b', 'bob is on node B')
  await backend.next('open', 'alice')
  backend.sendVia('node-a', sendRecord(SEND, ['bob'], ALL_BYTES))
  t.ok((await nextBinary(bob, 'the forwarded send')).equals(ALL_BYTES), 'a SEND via node A reaches bob on node B byte for byte')
  backend.sendVia('node-a', sendRecord(SEND, 'all', EMPTY))
  t.equal((await nextBinary(alice, 'all on A')).length, 0, 'an empty SEND to all reaches alice on node A')
  t.equal((await nextBinary(bob, 'all on B')).length, 0, 'and bob on node B, as an empty binary frame')
  t.equal(await b.metric('gatehouse_backend_frame_errors_total'), 0, 'node B refused nothing it was forwarded')
})

// ---- the SDK ----

/** An SDK service that echoes binary messages; `many` sends to every user it holds, `all` broadcasts. */
async function echoService (t: Test): Promise<RecordingService> {
  return await recordingService(t, (backend, user, data, binary) => {
    if (binary) backend.send(user, data as Buffer)
    else if (data === 'many') backend.send(backend.users(), Buffer.from('many'))
    else if (data === 'all') backend.broadcast(new Uint8Array([1, 2, 3]))
  })
}

t.test('SDK: handlers get Buffers and send takes them, with acks, in a pool of two', async (t) => {
  const a = await echoService(t)
  const b = await echoService(t)
  const gateway = await startGateway(t, testConfig([{
    name: 'game',
    path: '/game/:matchId',
    backend: {
      urls: [{ id: 'a', url: a.url }, { id: 'b', url: b.url }],
      route: 'params.matchId',
      encoding: 'binary',
      acks: true,
      token: BACKEND_TOKEN,
      minReconnectDelayMs: 20,
      maxReconnectDelayMs: 200
    }
  }]))
  await Promise.all([a.synced.next(), b.synced.next()])
  const matches = Array.from({ length: 8 }, (_, i) => `m${i}`)
  const clients = await Promise.all(matches.map(async (m) => await connect(gateway.url(`/game/${m}`), { token: tokenFor(`u-${m}`) })))
  for (const client of clients) {
    client.ws.send(ALL_BYTES)
    client.ws.send(EMPTY)
  }
  for (const [i, client] of clients.entries()) {
    t.ok((await nextBinary(client, `echo of ${matches[i]}`)).equals(ALL_BYTES), `${matches[i]}: the 256 bytes come back byte for byte`)
    t.equal((await nextBinary(client, `empty echo of ${matches[i]}`)).length, 0, `${matches[i]}: the empty frame comes back empty`)
  }
  const all = [...a.received.all, ...b.received.all]
  t.equal(all.length, 16, 'every message reached one member')
  t.ok(all.every((m) => m.binary && Buffer.isBuffer(m.data)), 'handlers got a Buffer with binary: true')
  t.ok(a.received.all.length > 0 && b.received.all.length > 0, 'both members of the pool served clients, each on its own link')

  const isBytes = (bytes: Buffer) => (m: string | Buffer) => Buffer.isBuffer(m) && m.equals(bytes)
  clients[0].ws.send('many')
  await clients[0].messages.next(isBytes(Buffer.from('many')), 10000, 'many')
  t.pass('send to a list of users goes out binary')
  clients[0].ws.send('all')
  for (const [i, client] of clients.entries()) {
    await client.messages.next(isBytes(Buffer.from([1, 2, 3])), 10000, `broadcast to ${matches[i]}`)
    t.pass(`${matches[i]}: broadcast of a Uint8Array arrives byte for byte`)
  }
  t.equal(a.backend.stats.badFrames + b.backend.stats.badFrames, 0, 'the SDK saw no bad frame')
  t.equal(a.backend.stats.droppedActions + b.backend.stats.droppedActions, 0, 'nothing was dropped')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total'), 0, 'the gateway refused nothing')
})

t.test('SDK: garbage binary frames from a gateway are counted by kind; the link stays up', async (t) => {
  const { backend, url, received } = await echoService(t)
  const gateway = await standInGateway(url)
  gateway.ws.send(opening('binary'))
  const garbage: Array<[string, Buffer]> = [
    ['binary_truncated', Buffer.alloc(0)],
    ['binary_truncated', Buffer.from([2, 0])],
    ['binary_bad_length', Buffer.from([2, 0xff, 0xff, 0xff, 0xff, 0])],
    ['binary_bad_length', record(2, Buffer.from([0, 0, 0, 0, 0, 0, 0xff, 0xff, 1]))],
    ['binary_unknown_record', record(3, Buffer.from([0, 1]))],
    ['binary_unknown_record', record(200, EMPTY)],
    ['binary_invalid_record', record(2, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x7b, 0x7d]))],
    ['binary_invalid_record', messageRecord(MESSAGE, 'alice', EMPTY).fill(0x5b, 20, 22)],
    ['invalid_json', record(1, Buffer.from('nope'))]
  ]
  let reported = 0
  backend.on('badFrame', () => { reported++ })
  for (const [, frame] of garbage) gateway.ws.send(frame)
  gateway.ws.send(Buffer.concat(Array.from({ length: 100000 }, () => record(3, EMPTY))))
  gateway.ws.send(messageRecord(MESSAGE, 'alice', ALL_BYTES))
  const message = await received.next(undefined, 10000, 'the good message after the garbage')
  t.ok(Buffer.isBuffer(message.data) && (message.data as Buffer).equals(ALL_BYTES), 'the good record after the garbage is handed over as a Buffer, byte for byte')
  const expected: Record<string, number> = { binary_unknown_record: 100000 }
  for (const [kind] of garbage) expected[kind] = (expected[kind] ?? 0) + 1
  t.same(backend.stats.badFramesByKind, expected, 'each bad frame is counted by its kind, the 100,000 bad records of one frame too')
  t.equal(backend.stats.badFrames, garbage.length + 100000, 'and in badFrames')
  t.ok(reported <= garbage.length + 101, `the frame of 100,000 bad records is reported as 100 problems and one count, not one by one (${reported} reports)`)
  const echo = await gateway.actions.next((a) => a.record === 3, 10000, 'the echo as a SEND record')
  const body = echo.body as Buffer
  t.same([body[0], body.readUInt32BE(1), body.readUInt16BE(5), body.subarray(7, 12).toString()], [1, 1, 5, 'alice'], 'the echo names alice in the SEND record')
  t.ok(body.subarray(12).equals(ALL_BYTES), 'the echo carries the bytes raw')
})

t.test('SDK: a gateway without the binary encoding gets base64, and its binary frames are refused', async (t) => {
  const { backend, url, received } = await echoService(t)
  const gateway = await standInGateway(url)
  gateway.ws.send(opening())
  gateway.ws.send(messageRecord(MESSAGE, 'alice', ALL_BYTES))
  gateway.ws.send(JSON.stringify({ event: 'message', user: 'alice', params: {}, data: 'many' }))
  await received.next(undefined, 10000, 'the text message')
  const many = await gateway.actions.next((a) => a.action === 'send', 10000, 'the send')
  t.same(many, { action: 'send', user: 'alice', data: Buffer.from('many').toString('base64'), binary: true }, 'bytes go as base64 JSON to a version 1 gateway')
  t.same(backend.stats.badFramesByKind, { binary_frame: 1 }, 'the binary frame is refused as binary_frame')
})

t.test('SDK: a TEXT record on a link whose hello said "binary" is refused as unknown; the MESSAGE beside it arrives', async (t) => {
  const { backend, url, received } = await echoService(t)
  const gateway = await standInGateway(url)
  gateway.ws.send(opening('binary'))
  // TEXT records are the raw encoding's only (PROTOCOL.md §2a)
  gateway.ws.send(Buffer.concat([messageRecord(TEXT, 'alice', '"hi"'), messageRecord(MESSAGE, 'alice', ALL_BYTES)]))
  const got = await received.next(undefined, 10000, 'the binary message')
  t.ok(Buffer.isBuffer(got.data) && got.data.equals(ALL_BYTES), 'the MESSAGE record reaches the handler')
  t.same(backend.stats.badFramesByKind, { binary_unknown_record: 1 }, 'the TEXT record is refused as binary_unknown_record')
})

t.test('SDK: a user id too long for a record\'s u16 length gets base64 JSON, not a crash', async (t) => {
  const { backend, url } = await echoService(t)
  const gateway = await standInGateway(url)
  const long = 'x'.repeat(70000)
  gateway.ws.send(JSON.stringify([
    { event: 'hello', gateway: 'gw', endpoint: 'game', session: 's', protocol: 1, encoding: 'binary' },
    { event: 'sync', users: [] },
    { event: 'open', user: long, claims: {}, params: {} },
    { event: 'open', user: 'bob', claims: {}, params: {} }
  ]))
  gateway.ws.send(JSON.stringify({ event: 'message', user: 'bob', params: {}, data: 'many' }))
  const sent = await gateway.actions.next((a) => a.action === 'send', 10000, 'the send to the long id')
  t.same(sent, { action: 'send', users: [long, 'bob'], data: Buffer.from('many').toString('base64'), binary: true }, 'the list with the long id goes as base64 JSON')
  t.equal(backend.stats.droppedActions, 0, 'nothing was dropped')
})

t.test('the binary bench runs (smoke): every contender measured, link bytes counted, binary records near the payload', async (t) => {
  const dir = t.testdir()
  const { code, stderr } = await runBench('binary', { BINARY_SMOKE: '1', BINARY_OUT: dir })
  t.equal(code, 0, `the bench exits 0\n${stderr.slice(-2000)}`)
  const result = JSON.parse(readFileSync(`${dir}/binary-results.json`, 'utf8')) as {
    runs: Array<{ contender: string, roundTrips: number, link?: { messages: number, payloadBytes: number, inBytes: number, outBytes: number } }>
    codecRuns: Array<{ codec: string, bytes: number }>
  }
  for (const name of ['direct', 'gatehouse-json', 'gatehouse-binary']) {
    t.ok(result.runs.some((r) => r.contender === name && r.roundTrips > 0), `${name} made round trips, every echo checked`)
  }
  const link = (name: string) => result.runs.find((r) => r.contender === name)?.link
  const binary = link('gatehouse-binary')
  const json = link('gatehouse-json')
  t.ok(binary !== undefined && binary.messages > 0 && json !== undefined && json.messages > 0, 'the backend counted the link bytes of both encodings')
  if (binary && json) {
    t.ok(binary.inBytes / binary.messages < binary.payloadBytes / binary.messages * 1.05, 'gateway → backend: at most 5 % over the payload with binary records (the bench\'s short ids)')
    t.ok(binary.outBytes / binary.messages < binary.payloadBytes / binary.messages * 1.05, 'backend → gateway: the same')
    t.ok(json.inBytes / json.messages > json.payloadBytes / json.messages * 1.3, 'base64 JSON is a third larger: the figure measures what it says')
  }
  t.ok(result.codecRuns.some((r) => r.codec.startsWith('binary records')), 'the codec comparison ran')
})
