/**
 * The raw link encoding (`backend.encoding: "raw"`, PROTOCOL.md §2a): a
 * player's text frame reaches the backend as a TEXT record holding its bytes
 * as sent, and a backend's TEXT_SEND record reaches players as a text frame
 * of its bytes, with no JSON on the gateway's path; with acks and a replay,
 * a held session, a cluster, the SDK, and against hostile frames. The raw
 * backend here reads and writes records by hand, from the layout in
 * PROTOCOL.md, not with the codec under test.
 */
import t from 'tap'
import { BACKEND_TOKEN, recordingService, type RecordingService } from './sdk-fixtures.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { aliceAndBobOnTwoNodes, player, rawEndpoint, type Player } from './helpers/raw-players.js'
import { TEXT, TEXT_SEND, handBackend, jsonRecord, messageRecord, opening, record, sendBadFrames, standInGateway, textSend } from './helpers/records.js'

type Test = { teardown (fn: () => unknown): void }

// two gateway processes and Redis, on a loaded 2-core machine
t.setTimeout(180_000)

/** JSON, not JSON, empty, multi-byte UTF-8, JSON with spaces a parse would drop, a number a parse would round. */
const TEXTS = ['{"move":1}', 'not json {', '', 'héllo wörld — 日本語 🎲', ' [1, 2 ,3] ', '"a string"', '12345678901234567890123']

async function nextText (client: Player, what: string): Promise<Buffer> {
  const frame = await client.frames.next(undefined, 10000, what)
  if (frame.binary) throw new Error(`${what}: got a binary frame`)
  return frame.bytes
}

t.test('raw text both ways: JSON, not JSON, empty and multi-byte text, byte for byte, no JSON on the path', async (t) => {
  const backend = await handBackend(t, { frameKind: true })
  const gateway = await startGateway(t, testConfig([rawEndpoint(backend.url)]))
  const hello = await backend.next('hello')
  t.equal(hello.encoding, 'raw', 'hello announces the raw encoding')
  await backend.next('sync')
  const alice = await player(gateway.url('/game/m1'), 'alice')
  await backend.next('open', 'alice')

  for (const text of TEXTS) alice.ws.send(text)
  alice.ws.send(Buffer.from([0, 255]))
  for (const text of TEXTS) {
    const message = await backend.next('message', 'alice')
    t.equal(message.record, TEXT, `${JSON.stringify(text)}: arrives as a TEXT record`)
    t.ok(message.bytes?.equals(Buffer.from(text)), `${JSON.stringify(text)}: its bytes exactly as sent`)
    t.same(message.params, { matchId: 'm1' }, `${JSON.stringify(text)}: with the client's params`)
    t.equal(message.seq, undefined, `${JSON.stringify(text)}: no seq without acks`)
  }
  const binary = await backend.next('message', 'alice')
  t.ok(binary.record === 2 && binary.bytes?.equals(Buffer.from([0, 255])), 'a binary frame is still a MESSAGE record')

  // one frame: a TEXT_SEND per text, then one to all
  backend.send(Buffer.concat([...TEXTS.map((text) => textSend(['alice'], text)), textSend('all', 'to all ✓')]))
  for (const text of TEXTS) t.ok((await nextText(alice, JSON.stringify(text))).equals(Buffer.from(text)), `${JSON.stringify(text)}: reaches the player as a text frame, byte for byte`)
  t.equal((await nextText(alice, 'the send to all')).toString(), 'to all ✓', 'a TEXT_SEND to all reaches the player as text')
  backend.send(JSON.stringify({ action: 'send', user: 'alice', data: { still: 'json' } }))
  t.equal((await nextText(alice, 'a JSON send')).toString(), '{"still":"json"}', 'a JSON send still works on a raw link')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total'), 0, 'no frame was refused')
})

t.test('a binary link is unchanged: text goes as a JSON event in a text frame; TEXT_SEND is taken', async (t) => {
  const backend = await handBackend(t, { frameKind: true })
  const gateway = await startGateway(t, testConfig([rawEndpoint(backend.url, { encoding: 'binary' })]))
  const hello = await backend.next('hello')
  t.equal(hello.encoding, 'binary', 'hello says binary, not raw')
  await backend.next('sync')
  const alice = await player(gateway.url('/game/m1'), 'alice')
  await backend.next('open', 'alice')
  alice.ws.send('{"move":1}')
  alice.ws.send('not json')
  const first = await backend.next('message', 'alice')
  const second = await backend.next('message', 'alice')
  t.same(first, { event: 'message', user: 'alice', params: { matchId: 'm1' }, data: { move: 1 }, inBinaryFrame: false }, 'JSON text is a JSON event with its value, in a text frame, as before')
  t.same(second, { event: 'message', user: 'alice', params: { matchId: 'm1' }, data: 'not json', inBinaryFrame: false }, 'other text is a JSON event with a string')
  backend.send(textSend(['alice'], 'text record'))
  t.equal((await nextText(alice, 'a TEXT_SEND on a binary link')).toString(), 'text record', 'a TEXT_SEND record is taken on a binary link too')
})

t.test('acks and a backend kill: unacknowledged TEXT records are replayed with their seq and bytes', async (t) => {
  const backend = await handBackend(t, { frameKind: true })
  const gateway = await startGateway(t, testConfig([rawEndpoint(backend.url, { acks: true })]))
  await backend.next('sync')
  const alice = await player(gateway.url('/game/m1'), 'alice')
  const open = await backend.next('open', 'alice')
  t.equal(open.seq, 1, 'the open has seq 1')
  const texts = ['{"a":1}', '', 'ünïcode ✓']
  for (const text of texts) alice.ws.send(text)
  const got = [await backend.next('message'), await backend.next('message'), await backend.next('message')]
  t.same(got.map((e) => e.seq), [2, 3, 4], 'TEXT records carry seq 2, 3, 4')
  t.ok(got.every((e, i) => e.record === TEXT && e.bytes?.equals(Buffer.from(texts[i]))), 'each a TEXT record with the bytes sent')
  // the ack in a JSON record, then a TEXT_SEND: its arrival proves the ack was taken (actions run in frame order)
  backend.send(Buffer.concat([jsonRecord({ action: 'ack', seq: 2 }), textSend(['alice'], 'acked')]))
  t.equal((await nextText(alice, 'the send after the ack')).toString(), 'acked', 'the frame\'s actions ran')
  backend.kill()

  const sync = await backend.next('sync')
  t.equal(sync.seq, 2, 'the sync after the kill is as of the last ack')
  const replayed = [await backend.next('message'), await backend.next('message')]
  t.same(replayed.map((e) => [e.record, e.seq]), [[TEXT, 3], [TEXT, 4]], 'the unacknowledged texts are replayed as TEXT records with their original seq')
  t.ok(replayed[0].bytes?.equals(Buffer.from(texts[1])) && replayed[1].bytes?.equals(Buffer.from(texts[2])), 'with the same bytes')
  alice.ws.send('next')
  const fresh = await backend.next('message')
  t.same([fresh.record, fresh.seq, fresh.bytes?.toString()], [TEXT, 5, 'next'], 'a new text takes the next seq')
})

t.test('duplicate "allow": a record names no connection, so text goes as a JSON event with its conn', async (t) => {
  const backend = await handBackend(t, { frameKind: true })
  const gateway = await startGateway(t, testConfig([{ ...rawEndpoint(backend.url), duplicate: 'allow' }]))
  await backend.next('sync')
  const alice = await player(gateway.url('/game/m1'), 'alice')
  const open = await backend.next('open', 'alice')
  t.type(open.conn, 'string', 'the open carries a conn')
  alice.ws.send('{"move":2}')
  const message = await backend.next('message', 'alice')
  t.same([message.record, message.conn, message.data], [undefined, open.conn, { move: 2 }], 'a JSON event with the conn and the value')
  backend.send(JSON.stringify({ action: 'send', conn: open.conn, data: 'to the conn' }))
  t.equal((await nextText(alice, 'the send to the conn')).toString(), 'to the conn', 'a JSON send to the conn reaches it')
})

t.test('a held session keeps TEXT_SEND frames within its bound and delivers them as text on resume', async (t) => {
  const backend = await handBackend(t, { frameKind: true })
  const gateway = await startGateway(t, testConfig([{ ...rawEndpoint(backend.url), resumeGraceMs: 10000 }], { limits: { maxBufferedBytes: 4096 } }))
  await backend.next('sync')
  const first = await player(gateway.url('/game/m1'), 'alice')
  const bob = await player(gateway.url('/game/m1'), 'bob')
  await backend.next('open', 'alice')
  await backend.next('open', 'bob')
  first.ws.terminate()
  await gateway.logged(/holding its session for a resume/)
  backend.send(Buffer.concat([textSend(['alice'], 'kept ✓'), textSend(['alice'], ''), textSend(['bob'], 'bob')]))
  t.equal((await nextText(bob, 'bob\'s send')).toString(), 'bob', 'the frames for alice were taken before bob\'s')
  const again = await player(gateway.url('/game/m1'), 'alice')
  t.equal((await nextText(again, 'the kept text')).toString(), 'kept ✓', 'the kept TEXT_SEND arrives as a text frame after the resume')
  t.equal((await nextText(again, 'the kept empty text')).length, 0, 'then the kept empty text')

  again.ws.terminate()
  await gateway.logged(/holding its session for a resume/)
  backend.send(textSend(['alice'], 'x'.repeat(4097)))
  const close = await backend.next('close', 'alice')
  t.equal(close.code, 1006, 'a TEXT_SEND past maxBufferedBytes ends the held session, as a JSON send does')
  t.equal(await gateway.metric('gatehouse_dropped_actions_total', { reason: 'resume_expired' }), 1, 'and the dropped send is counted')
})

t.test('hostile frames from a raw backend are counted by kind; the link stays up', async (t) => {
  const backend = await handBackend(t, { frameKind: true })
  const gateway = await startGateway(t, testConfig([rawEndpoint(backend.url)]))
  await backend.next('sync')
  const alice = await player(gateway.url('/game/m1'), 'alice')
  await backend.next('open', 'alice')
  const cases: Array<[string, Buffer]> = [
    ['binary_invalid_record', textSend(['alice'], Buffer.from([0x68, 0xc3, 0x28]))],
    ['binary_invalid_record', textSend('all', Buffer.from([0xff]))],
    ['binary_invalid_record', textSend(['alice'], Buffer.from([0xed, 0xa0, 0x80]))],
    ['binary_bad_length', record(TEXT_SEND, Buffer.from([1, 0xff, 0xff, 0xff, 0xff, 0, 1]))],
    ['binary_bad_length', record(TEXT_SEND, Buffer.from([1, 0, 0, 0, 1, 0, 50, 1]))],
    ['binary_bad_length', Buffer.from([TEXT_SEND, 0, 0, 1, 0, 0])],
    ['binary_truncated', Buffer.from([TEXT_SEND, 0])],
    ['binary_invalid_record', record(TEXT_SEND, Buffer.from([2, 0x61]))],
    ['binary_invalid_record', record(TEXT_SEND, Buffer.from([1, 0, 0, 0, 0]))],
    ['binary_unknown_record', messageRecord(TEXT, 'alice', Buffer.from('a TEXT record is the gateway\'s to send'))]
  ]
  const expected = await sendBadFrames(t, backend, gateway, cases)
  t.equal(alice.frames.all.length, 0, 'no bad text reached the player')
  // 100,000 TEXT_SENDs of invalid UTF-8 in one frame: each counted, one log line, the good record at the end still runs
  const bad = textSend(['alice'], Buffer.from([0xc0, 0x80]))
  backend.send(Buffer.concat([...Array.from({ length: 100000 }, () => bad), textSend(['alice'], 'after many')]))
  const many = await gateway.logged(/backend sent a bad frame/)
  t.equal(many.more, 100000 - 10, 'one log line: ten problems and the count of the rest')
  t.equal((await nextText(alice, 'the send after 100,000 bad records')).toString(), 'after many', 'the good record at the end of that frame still runs')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { reason: 'binary_invalid_record' }), expected.binary_invalid_record + 100000, 'each of the 100,000 counted')
  t.equal(alice.frames.all.length, 1, 'the player got only the good one')
  t.equal(await gateway.metric('gatehouse_link_reconnects_total'), 0, 'the link was never dropped')
  t.equal(await gateway.metric('gatehouse_link_up'), 1, 'and is up')
  alice.ws.send('still here')
  t.equal((await backend.next('message', 'alice')).bytes?.toString(), 'still here', 'the gateway still carries the player\'s text')
})

t.test('a cluster: a TEXT_SEND for a user on another node crosses the bus as a string and arrives byte for byte', async (t) => {
  const backend = await handBackend(t, { frameKind: true })
  const { b, alice, bob } = await aliceAndBobOnTwoNodes(t, backend, rawEndpoint(backend.url))
  const text = '{"to":"bob","é":"日本"}'
  backend.sendVia('node-a', textSend(['bob'], text))
  t.ok((await nextText(bob, 'the forwarded send')).equals(Buffer.from(text)), 'a TEXT_SEND via node A reaches bob on node B as text, byte for byte')
  backend.sendVia('node-a', textSend('all', ''))
  t.equal((await nextText(alice, 'all on A')).length, 0, 'an empty TEXT_SEND to all reaches alice on node A')
  t.equal((await nextText(bob, 'all on B')).length, 0, 'and bob on node B, as an empty text frame')
  t.equal(await b.metric('gatehouse_backend_frame_errors_total'), 0, 'node B refused nothing it was forwarded')
})

// ---- the SDK ----

/** An SDK service that echoes every message to its sender; `all` broadcasts an object. */
async function echoService (t: Test): Promise<RecordingService> {
  return await recordingService(t, (backend, user, data, binary) => {
    if (data === 'all') backend.broadcast({ to: 'all' })
    else backend.send(user, binary ? data as Buffer : data)
  })
}

t.test('SDK: an app on a raw link sees the same data, and its players the same echoes, as on a JSON link', async (t) => {
  const service = await echoService(t)
  const link = { url: service.url, token: BACKEND_TOKEN, acks: true, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 }
  const gateway = await startGateway(t, testConfig([
    { name: 'json', path: '/json/:matchId', backend: link },
    { name: 'raw', path: '/raw/:matchId', backend: { ...link, encoding: 'raw' } }
  ]))
  await service.synced.next(undefined, 10000, 'first sync')
  await service.synced.next(undefined, 10000, 'second sync')
  const onJson = await player(gateway.url('/json/m1'), 'jay')
  const onRaw = await player(gateway.url('/raw/m1'), 'ray')
  for (const text of TEXTS) {
    onJson.ws.send(text)
    onRaw.ws.send(text)
  }
  const echoes: Record<string, Buffer[]> = { jay: [], ray: [] }
  for (const [name, client] of [['jay', onJson], ['ray', onRaw]] as const) {
    for (const text of TEXTS) echoes[name].push(await nextText(client, `${name}'s echo of ${JSON.stringify(text)}`))
  }
  const seen = (user: string) => service.received.all.filter((m) => m.user === user).map(({ data, binary }) => ({ data, binary }))
  t.same(seen('ray'), seen('jay'), 'handlers got the same data and binary flag from the raw link as from the JSON link')
  t.equal(seen('ray').length, TEXTS.length, 'every text reached the handler')
  t.same(seen('ray').map((m) => m.data), [{ move: 1 }, 'not json {', '', 'héllo wörld — 日本語 🎲', [1, 2, 3], 'a string', 12345678901234567890123], 'JSON text is its value, other text the string')
  t.same(echoes.ray.map(String), echoes.jay.map(String), 'the players got the same echoes from both links')
  t.ok(echoes.ray.every((bytes, i) => bytes.equals(echoes.jay[i])), 'byte for byte')
  onRaw.ws.send('all')
  t.equal((await nextText(onRaw, 'the broadcast')).toString(), '{"to":"all"}', 'a broadcast of an object reaches the raw endpoint\'s player as its JSON')
  t.equal(service.backend.stats.badFrames, 0, 'the SDK saw no bad frame')
  t.equal(service.backend.stats.droppedActions, 0, 'nothing was dropped')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total'), 0, 'the gateway refused nothing')
})

t.test('SDK: a text send goes as a TEXT_SEND record on a raw link only, its data a string as is or a value as its JSON', async (t) => {
  const { url } = await echoService(t)
  const raw = await standInGateway(url)
  raw.ws.send(opening('raw'))
  raw.ws.send(messageRecord(TEXT, 'alice', Buffer.from('plain ✓')))
  raw.ws.send(messageRecord(TEXT, 'alice', Buffer.from(' {"a": [1]} ')))
  const first = await raw.actions.next(undefined, 10000, 'the echo of plain text')
  const body = first.body as Buffer
  t.same([first.record, body[0], body.readUInt32BE(1), body.readUInt16BE(5), body.subarray(7, 12).toString()], [TEXT_SEND, 1, 1, 5, 'alice'], 'the echo is a TEXT_SEND record naming alice')
  t.equal(body.subarray(12).toString(), 'plain ✓', 'a string goes as its bytes')
  const second = await raw.actions.next(undefined, 10000, 'the echo of JSON text')
  t.equal((second.body as Buffer).subarray(12).toString(), '{"a":[1]}', 'a value goes as its JSON, stringified once')

  const binary = await standInGateway(url)
  binary.ws.send(opening('binary'))
  binary.ws.send(JSON.stringify({ event: 'message', user: 'alice', params: {}, data: 'plain' }))
  t.same(await binary.actions.next(undefined, 10000, 'the echo on a binary link'), { action: 'send', user: 'alice', data: 'plain' }, 'on a binary link a text send stays a JSON action')
})

t.test('SDK: hostile TEXT records from a gateway are counted by kind; the link stays up', async (t) => {
  const { backend, url, received } = await echoService(t)
  const gateway = await standInGateway(url)
  gateway.ws.send(opening('raw'))
  const garbage: Array<[string, Buffer]> = [
    ['binary_invalid_record', messageRecord(TEXT, 'alice', Buffer.from([0xc3, 0x28]))],
    ['binary_bad_length', record(TEXT, Buffer.from([0, 0, 0, 0, 0, 0, 0xff, 0xff, 1]))],
    ['binary_bad_length', record(TEXT, Buffer.from([0, 0, 0]))],
    ['binary_unknown_record', textSend(['alice'], 'a TEXT_SEND is the backend\'s to send')]
  ]
  for (const [, frame] of garbage) gateway.ws.send(frame)
  gateway.ws.send(Buffer.concat(Array.from({ length: 100000 }, () => messageRecord(TEXT, 'alice', Buffer.from([0xff])))))
  gateway.ws.send(messageRecord(TEXT, 'alice', Buffer.from('good')))
  const message = await received.next(undefined, 10000, 'the good message after the garbage')
  t.same(message, { user: 'alice', data: 'good', binary: false }, 'the good TEXT record after the garbage is handed over as text')
  const expected: Record<string, number> = {}
  for (const [kind] of garbage) expected[kind] = (expected[kind] ?? 0) + 1
  expected.binary_invalid_record += 100000
  t.same(backend.stats.badFramesByKind, expected, 'each bad record is counted by its kind, the 100,000 of one frame too')
  t.equal(received.all.length, 1, 'no bad record reached the handler')
})

t.test('SDK: a gateway frame of 200,000 events is taken in order, not as 200,000 call arguments (which overflow the stack)', async (t) => {
  const { backend, url, received } = await echoService(t)
  const gateway = await standInGateway(url)
  gateway.ws.send(opening('raw'))
  const stray = messageRecord(TEXT, 'nobody', Buffer.from('x'))
  gateway.ws.send(Buffer.concat(Array.from({ length: 200000 }, () => stray)))
  gateway.ws.send(messageRecord(TEXT, 'alice', Buffer.from('after')))
  const message = await received.next(undefined, 30000, 'the message after the large frame')
  t.same(message, { user: 'alice', data: 'after', binary: false }, 'the message after the large frame is handled: the process is fine')
  t.equal(backend.stats.strayEvents, 200000, 'every event of the large frame was dispatched (each a stray: nobody is not connected)')
  t.equal(backend.stats.badFrames, 0, 'none was refused')
})
