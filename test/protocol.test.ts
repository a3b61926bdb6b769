/** The pure codec, on plain strings: what it builds, what it accepts, and what it must refuse. */
import t from 'tap'
import {
  decodeActions, decodeEvents, encodeActions, encodeBinaryMessage, encodeClose, encodeFrame, encodeHello, encodeOpen,
  encodeSync, encodeTextMessage, messagePrefix, sendPayload, truncateReason, isBackendCloseCode, CloseCodes, PROTOCOL_VERSION
} from '../protocol/index.js'

const prefix = messagePrefix('alice', { matchId: 'm"1' })

t.test('message envelopes: JSON frames spliced as values, anything else as a string', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['{"move":3}', { move: 3 }],
    ['  [1, 2]  ', [1, 2]],
    ['12345678901234567890', 12345678901234567890],
    ['"quoted"', 'quoted'],
    ['null', null],
    ['', ''],
    ['not json', 'not json'],
    ['1,"user":"bob"', '1,"user":"bob"'],
    ['{"a":1}}, {"user":"bob"', '{"a":1}}, {"user":"bob"'],
    ['"x"},"user":"bob","y":{"z":"', '"x"},"user":"bob","y":{"z":"'],
    ['\uFEFF{"bom":1}', '\uFEFF{"bom":1}'],
    ['{"user":"bob","params":{"matchId":"other"}}', { user: 'bob', params: { matchId: 'other' } }]
  ]
  for (const [frame, data] of cases) {
    const text = encodeTextMessage(prefix, frame)
    const event = JSON.parse(text)
    t.same(event, { event: 'message', user: 'alice', params: { matchId: 'm"1' }, data }, JSON.stringify(frame))
    t.same(decodeEvents(text).errors, [], 'and it is a valid event')
  }
  t.equal(encodeTextMessage(prefix, '12345678901234567890').endsWith('12345678901234567890}'), true, 'big numbers keep their digits')
  t.same(JSON.parse(encodeBinaryMessage(prefix, Buffer.from([0, 255]))), { event: 'message', user: 'alice', params: { matchId: 'm"1' }, data: 'AP8=', binary: true }, 'a binary frame is wrapped as base64, marked binary')
})

t.test('gateway events are valid by the schemas', async (t) => {
  const frame = encodeFrame([
    encodeHello('node-1', 'lobby', 'session-1'),
    encodeSync([{ user: 'a', claims: { sub: 'a' }, params: {} }]),
    encodeOpen('a', { sub: 'a' }, {}),
    encodeClose('a', {}, 1006, 'connection lost')
  ])
  const { items, errors } = decodeEvents(frame)
  t.same(errors, [], 'every gateway event passes the schemas')
  t.same(items.map((e) => e.event), ['hello', 'sync', 'open', 'close'], 'a batch decodes to its events, in order')
  t.equal((items[0] as { protocol: number }).protocol, PROTOCOL_VERSION, 'hello carries the protocol version')
  t.equal(encodeFrame(['{"a":1}']), '{"a":1}', 'one event is sent bare, not as a batch')
})

t.test('events with fields added in a later version still decode; actions with unknown fields do not (PROTOCOL.md §9)', async (t) => {
  const later = decodeEvents('[{"event":"hello","gateway":"g","endpoint":"lobby","session":"s","protocol":1,"member":"m1"},{"event":"open","user":"a","claims":{},"params":{},"region":"eu"}]')
  t.same(later.errors, [], 'a backend ignores event fields it does not know')
  t.same(later.items.map((e) => e.event), ['hello', 'open'], 'both events are kept')
  const typo = decodeActions('{"action":"send","usr":"a","user":"a","data":1}')
  t.equal(typo.items.length, 0, 'an action with an unknown field is refused')
  t.match(typo.errors[0]?.message, /usr/, 'and the error names the field')
})

t.test('bad input: an action with 200,000 bad users is refused with one short error', async (t) => {
  const { items, errors } = decodeActions(JSON.stringify({ action: 'send', users: Array.from({ length: 200_000 }, () => 5), data: 1 }))
  t.equal(items.length, 0, 'the action is refused')
  t.same(errors.map((e) => e.message), ['action.users[0]: must be string'], 'one problem named, not 200,000')
})

t.test('actions: valid ones pass, each bad one is named by index and field', async (t) => {
  const good = [
    { action: 'send', user: 'a', data: { x: 1 } },
    { action: 'send', users: ['a', 'b'], data: 'text' },
    { action: 'send', all: true, data: [1] },
    { action: 'send', user: 'a', data: 'AAE=', binary: true },
    { action: 'close', user: 'a' },
    { action: 'close', users: ['a'], code: 4000, reason: 'bye' }
  ]
  t.same(decodeActions(encodeActions(good as never)).items, good, 'valid actions of every kind round-trip')
  t.same(decodeActions(JSON.stringify(good[0])).items, [good[0]], 'a single object is a frame too')

  const bad: Array<[unknown, string]> = [
    [{ action: 'send', data: 1 }, 'action: must have exactly one of user, users, all, conn'],
    [{ action: 'send', user: 'a', all: true, data: 1 }, 'action: must have exactly one of user, users, all, conn'],
    [{ action: 'send', user: 'a' }, 'action.data: is required'],
    [{ action: 'send', user: '', data: 1 }, 'action.user: must NOT have fewer than 1 characters'],
    [{ action: 'send', user: 'a', data: 1, binary: true }, 'action.data: must be string'],
    [{ action: 'send', user: 'a', data: '!!not base64!!', binary: true }, 'action.data: must match pattern "^[A-Za-z0-9+/]*={0,2}$"'],
    [{ action: 'send', all: false, data: 1 }, 'action.all: must be equal to constant'],
    [{ action: 'close', user: 'a', code: 1001 }, 'action.code: must be 1000 or 4000-4999'],
    [{ action: 'close', user: 'a', code: 5000 }, 'action.code: must be 1000 or 4000-4999'],
    [{ action: 'close', user: 'a', reason: 'r'.repeat(124) }, 'action.reason: must be at most 123 bytes of UTF-8'],
    [{ action: 'close', all: true }, 'action: must have exactly one of user, users, conn'],
    [{ action: 'send', user: 'a', data: 1, extra: 1 }, 'action.extra: is not a known field'],
    [{ action: 'launch' }, 'action.action: must be one of send, close, ack, drain, undrain'],
    [{ user: 'a' }, 'action.action: must be one of send, close, ack, drain, undrain'],
    [null, 'action.action: must be one of send, close, ack, drain, undrain'],
    ['send', 'action.action: must be one of send, close, ack, drain, undrain']
  ]
  for (const [action, message] of bad) {
    const { items, errors } = decodeActions(JSON.stringify(action))
    t.same(items, [], JSON.stringify(action))
    t.ok(errors[0]?.message.split('; ').includes(message), `${JSON.stringify(action)}: ${message} (got ${errors[0]?.message})`)
  }
  const batch = decodeActions(JSON.stringify([good[0], { action: 'x' }, good[4]]))
  t.equal(batch.items.length, 2, 'a bad action in a batch does not spoil the others')
  t.same(batch.errors, [{ kind: 'invalid_message', message: 'action[1].action: must be one of send, close, ack, drain, undrain' }], 'the bad action in a batch is named by its index')
  for (const garbage of ['', '{', '{"action":', '\u0000', 'undefined']) {
    t.equal(decodeActions(garbage).errors[0].kind, 'invalid_json', `${JSON.stringify(garbage)} is not JSON`)
  }
})

t.test('send payloads, close codes and reasons', async (t) => {
  t.equal(sendPayload('as is', undefined), 'as is', 'a string is sent as is')
  t.equal(sendPayload({ a: [1] }, false), '{"a":[1]}', 'a JSON value is sent as its JSON text')
  t.same(sendPayload('AAE=', true), Buffer.from([0, 1]), 'base64 with binary: true is sent as bytes')
  t.ok(isBackendCloseCode(1000) && isBackendCloseCode(4999) && !isBackendCloseCode(1001) && !isBackendCloseCode(3000), '1000 and 4000-4999 are backend close codes; 1001 and 3000 are not')
  t.equal(truncateReason('short'), 'short', 'a short reason is kept')
  const long = 'é'.repeat(100)
  t.equal(Buffer.byteLength(truncateReason(long)), 122, 'cut to at most 123 bytes without splitting a character')
  for (const entry of Object.values(CloseCodes)) t.ok(Buffer.byteLength(entry.reason) <= 123, `${entry.reason} fits a close frame`)
})
