/** Client frames → `message` events, backend actions → client frames and closes. */
import t from 'tap'
import { gatewayWithBackends } from './helpers/setup.js'
import { connect } from './helpers/client.js'
import { tokenFor } from './helpers/tokens.js'

/** A lobby endpoint and a game endpoint (with a path parameter), each with its own backend. */
async function lobbyAndGame (t: { teardown (fn: () => unknown): void }) {
  const { gateway, backends } = await gatewayWithBackends(t, [{ name: 'lobby', path: '/lobby' }, { name: 'game', path: '/game/:matchId' }])
  return { backend: backends.lobby, game: backends.game, gateway }
}

t.test('hello names the gateway, the endpoint and the protocol version; sync follows', async (t) => {
  const { gateway, backends: { lobby: backend }, hellos: { lobby: hello } } = await gatewayWithBackends(t, [{ name: 'lobby', path: '/lobby' }], { server: { host: '127.0.0.1', port: 0, nodeId: 'node-a' } })
  t.same(hello, { event: 'hello', gateway: 'node-a', endpoint: 'lobby', session: hello.session, protocol: 1 }, 'hello names the node, the endpoint, the session and protocol 1')
  t.match(hello.session, /^[0-9a-f-]{36}$/, 'a random session id')
  t.same(await backend.next('sync'), { event: 'sync', users: [] }, 'sync follows hello, with no users yet')
  t.equal((await gateway.get('/readyz')).status, 200, 'a gateway whose link is up is ready')
})

t.test('open, messages and close reach the backend in order, with claims and params', async (t) => {
  const { game: backend, gateway } = await lobbyAndGame(t)
  const alice = await connect(gateway.url('/game/m42'), { token: tokenFor('alice', { role: 'player' }) })
  const open = await backend.next('open', 'alice')
  t.same(open.params, { matchId: 'm42' }, 'open carries the path params')
  t.equal((open.claims as Record<string, unknown>).role, 'player', 'open carries the token\'s claims')
  alice.ws.send('{"move":1}')
  alice.ws.send('hello there')
  alice.ws.send(Buffer.from([0, 1, 2, 255]), { binary: true })
  alice.ws.send('')
  t.same(await backend.next('message', 'alice'), { event: 'message', user: 'alice', params: { matchId: 'm42' }, data: { move: 1 } }, 'a JSON frame arrives parsed, with user and params')
  t.same((await backend.next('message', 'alice')).data, 'hello there', 'a frame that is not JSON arrives as a string')
  const binary = await backend.next('message', 'alice')
  t.equal(binary.binary, true, 'a binary frame is marked binary')
  t.same(Buffer.from(binary.data as string, 'base64'), Buffer.from([0, 1, 2, 255]), 'and its bytes arrive as base64')
  t.equal((await backend.next('message', 'alice')).data, '', 'an empty frame is an empty string')
  alice.ws.close(4000, 'bye')
  const close = await backend.next('close', 'alice')
  t.same(close, { event: 'close', user: 'alice', params: { matchId: 'm42' }, code: 4000, reason: 'bye' }, 'close carries the client\'s code and reason')
})

t.test('a client cannot forge the envelope', async (t) => {
  const { backend, gateway } = await lobbyAndGame(t)
  const alice = await connect(gateway.url('/lobby'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  const forgeries = [
    '1,"user":"bob"',
    '{"user":"bob"}',
    '"x"},{"event":"message","user":"bob","params":{},"data":"y"',
    '{"event":"close","user":"bob","params":{},"code":1000,"reason":""}',
    '[{"event":"open","user":"bob"}]',
    '{"a":1}}, {"event":"message","user":"bob"'
  ]
  for (const frame of forgeries) alice.ws.send(frame)
  for (const frame of forgeries) {
    const event = await backend.next('message')
    t.equal(event.user, 'alice', `still alice after ${frame}`)
    t.same(event.params, {}, 'the forged frame carries the real params')
    let expected: unknown = frame
    try { expected = JSON.parse(frame) } catch {}
    t.same(event.data, expected, 'the forged frame arrives as data, nothing more')
  }
  t.notOk(backend.events.all.some((e) => e.user === 'bob'), 'no event ever names bob')
})

t.test('send actions: to one user, to a list, to all, batched, text and binary', async (t) => {
  const { backend, game, gateway } = await lobbyAndGame(t)
  const alice = await connect(gateway.url('/lobby'), { token: tokenFor('alice') })
  const bob = await connect(gateway.url('/lobby'), { token: tokenFor('bob') })
  const carol = await connect(gateway.url('/game/m1'), { token: tokenFor('carol') })
  await backend.next('open', 'alice')
  await backend.next('open', 'bob')
  await game.next('open', 'carol')
  backend.send({ action: 'send', user: 'alice', data: { hi: 1 } })
  t.equal(await alice.next(), '{"hi":1}', 'a JSON value goes out as its JSON text')
  backend.send(JSON.stringify([
    { action: 'send', users: ['alice', 'bob'], data: 'plain text' },
    { action: 'send', all: true, data: [1, 2] },
    { action: 'send', user: 'bob', data: Buffer.from('bin').toString('base64'), binary: true }
  ]))
  t.equal(await alice.next(), 'plain text', 'a string goes out as that text')
  t.equal(await bob.next(), 'plain text', 'bob gets the list send')
  t.equal(await alice.next(), '[1,2]', 'alice gets the send to all')
  t.equal(await bob.next(), '[1,2]', 'bob gets the send to all')
  t.same(await bob.next(), Buffer.from('bin'), 'binary: true goes out as a binary frame')
  // carol's socket is ordered: a broadcast that leaked to her would come before this
  game.send({ action: 'send', user: 'carol', data: 'only this' })
  t.equal(await carol.next(), 'only this', 'all: true reaches only the endpoint that was addressed')
  t.equal(await gateway.metric('gatehouse_messages_out_total', { endpoint: 'lobby' }), 6, 'every frame sent on the lobby is counted')
})

t.test('close action: the client gets the code, the backend its close event', async (t) => {
  const { backend, gateway } = await lobbyAndGame(t)
  const alice = await connect(gateway.url('/lobby'), { token: tokenFor('alice') })
  const bob = await connect(gateway.url('/lobby'), { token: tokenFor('bob') })
  await backend.next('open', 'alice')
  await backend.next('open', 'bob')
  backend.send({ action: 'close', user: 'alice', code: 4001, reason: 'kicked' })
  t.same(await alice.closed, { code: 4001, reason: 'kicked' }, 'the client gets the code and reason of the close action')
  t.same(await backend.next('close', 'alice'), { event: 'close', user: 'alice', params: {}, code: 4001, reason: 'kicked' }, 'the backend gets a close event with the same code and reason')
  backend.send({ action: 'close', users: ['bob'] })
  t.equal((await bob.closed).code, 1000, 'code defaults to 1000')
  t.equal((await backend.next('close', 'bob')).code, 1000, 'the backend\'s close event says 1000 too')
  t.equal(backend.events.all.filter((e) => e.event === 'close').length, 2, 'exactly one close per client')
})

t.test('bad frames from the backend are counted and logged; the link stays up', async (t) => {
  const { backend, gateway } = await lobbyAndGame(t)
  const alice = await connect(gateway.url('/lobby'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  const link = (await backend.links.next()).socket
  link.send('not json at all {')
  link.send(JSON.stringify({ action: 'explode', user: 'alice' }))
  link.send(JSON.stringify({ action: 'send', data: 'no target' }))
  link.send(JSON.stringify({ action: 'close', user: 'alice', code: 1011 }))
  link.send(Buffer.from('binary'), { binary: true })
  // one good action inside a batch with bad ones still goes through
  link.send(JSON.stringify([{ action: 'send', user: 'ghost', data: 1 }, 7, { action: 'send', user: 'alice', data: 'still here' }]))
  t.equal(await alice.next(), 'still here', 'the good action in a batch with bad ones arrives')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { reason: 'invalid_json' }), 1, 'the frame that is not JSON is counted')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { reason: 'invalid_message' }), 4, 'the four invalid actions are counted')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { reason: 'binary_frame' }), 1, 'the binary frame is counted')
  t.equal(await gateway.metric('gatehouse_dropped_actions_total', { reason: 'not_connected' }), 1, 'an action for an absent user is dropped and counted')
  t.ok(gateway.logs.some((l) => l.includes('action.code: must be 1000 or 4000-4999')), 'the log names the bad field')
  alice.ws.send('and back')
  t.equal((await backend.next('message', 'alice')).data, 'and back', 'the client was not disturbed')
  t.equal((await gateway.get('/readyz')).status, 200, 'the link is still up')
  t.equal(backend.links.all.length, 1, 'the link never reconnected')
})
