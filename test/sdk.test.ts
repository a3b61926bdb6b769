/** The backend SDK over real sockets: real gateways, and a stand-in gateway for what real ones never send. */
import { once } from 'node:events'
import t from 'tap'
import { GatehouseBackend } from '../src/sdk/index.js'
import { startLobby } from '../examples/lobby/index.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { connect, refusal } from './helpers/client.js'
import { tokenFor } from './helpers/tokens.js'
import { onFreePort } from './helpers/ports.js'
import { BACKEND_TOKEN, call, captureLogger, fakeGateway, hello, nextOfType, recorder } from './sdk-fixtures.js'

type Test = { teardown (fn: () => unknown): void }

async function startBackend (t: Test, options: ConstructorParameters<typeof GatehouseBackend>[0] = {}) {
  const logger = captureLogger()
  const { handlers, calls } = recorder()
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger, ...options }, handlers)
  const { url, port } = await backend.listen()
  t.teardown(() => backend.stop())
  return { backend, url, port, calls, logger }
}

function lobbyEndpoint (url: string, token = BACKEND_TOKEN) {
  return { name: 'lobby', path: '/lobby', backend: { url, token, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }
}

t.test('only a gateway with the bearer token gets a link; the token is never logged', async (t) => {
  const { backend, url, port, logger } = await startBackend(t)
  t.equal((await refusal(url)).status, 401, 'no token')
  t.equal((await refusal(url, { token: 'not-the-token' })).status, 401, 'wrong token')
  t.equal((await refusal(url, { token: `${BACKEND_TOKEN}x` })).status, 401, 'token with a suffix')
  const plain = await fetch(`http://127.0.0.1:${port}/`)
  t.equal(plain.status, 426, 'a plain HTTP request is told to upgrade')
  t.equal(backend.stats.refusedLinks, 3, 'the three refused links are counted')

  // a real gateway with the wrong token never gets its link up
  const gateway = await startGateway(t, testConfig([lobbyEndpoint(url, 'wrong-backend-token')]))
  await logger.lines.next((l) => l.includes('gateway link refused'))
  t.equal((await gateway.get('/readyz')).status, 503, 'a gateway whose link is refused is not ready')
  t.notOk(logger.lines.all.some((l) => l.includes('not-the-token') || l.includes('wrong-backend-token') || l.includes(BACKEND_TOKEN)), 'no token in any log line')
})

t.test('open, message and close reach the handlers; send, broadcast and close reach the players', async (t) => {
  const { backend, url, calls, logger } = await startBackend(t)
  const linked = once(backend, 'synced')
  const gateway = await startGateway(t, testConfig([
    { name: 'game', path: '/game/:matchId', backend: { url, token: BACKEND_TOKEN, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }
  ]))
  await linked
  const alice = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  t.equal(await call(calls, 'open alice'), 'open alice {"matchId":"m1"}', 'open carries the path params')
  const bob = await connect(gateway.url('/game/m7'), { token: tokenFor('bob') })
  t.equal(await call(calls, 'open bob'), 'open bob {"matchId":"m7"}', 'path params arrive with open')
  t.same(backend.users().sort(), ['alice', 'bob'], 'the backend knows both users')
  t.same(backend.connection('bob')?.params, { matchId: 'm7' }, 'a connection keeps its path params')

  alice.ws.send('{"move":3}')
  alice.ws.send('not json')
  alice.ws.send(Buffer.from([1, 2, 3]))
  t.equal(await call(calls, 'message alice'), 'message alice {"move":3}', 'a JSON message arrives parsed')
  t.equal(await call(calls, 'message alice'), 'message alice "not json"', 'a text message that is not JSON arrives as a string')
  t.equal(await call(calls, 'message alice'), 'message alice "AQID" binary', 'a binary message arrives as base64, marked binary')

  t.equal(backend.send('alice', { hi: 1 }), 1, 'send counts the one user it went to')
  t.equal(await alice.next(), '{"hi":1}', 'the player gets the JSON text')
  t.equal(backend.send(['alice', 'bob'], 'text as is'), 2, 'one action for both')
  t.equal(await alice.next(), 'text as is', 'alice gets the text as is')
  t.equal(await bob.next(), 'text as is', 'bob gets the text as is')
  backend.send('bob', Buffer.from('bytes'))
  t.same(await bob.next(), Buffer.from('bytes'), 'a Buffer goes out as a binary frame')
  backend.broadcast({ all: true })
  t.equal(await alice.next(), '{"all":true}', 'alice gets the broadcast')
  t.equal(await bob.next(), '{"all":true}', 'bob gets the broadcast')

  t.equal(backend.send('nobody', 1), 0, 'a send for an unknown user is dropped')
  t.equal(backend.close(['nobody']), 0, 'a close for an unknown user is dropped')
  t.equal(backend.send('alice', { big: 10n }), 0, 'data that is not JSON is dropped, not thrown')
  t.equal(backend.send('alice', { not: 'base64' }, { binary: true }), 0, 'binary data that is not base64 text is dropped')
  backend.send('alice', 'AQID', { binary: true })
  t.same(await alice.next(), Buffer.from([1, 2, 3]), 'base64 text with binary: true goes out as bytes')
  t.equal(backend.stats.droppedActions, 4, 'the four dropped actions are counted')

  backend.close('alice', 4001, 'kicked')
  t.same(await alice.closed, { code: 4001, reason: 'kicked' }, 'the player sees the backend\'s code and reason')
  t.equal(await call(calls, 'close alice'), 'close alice 4001 kicked', 'onClose hears the same code and reason')
  t.notOk(logger.lines.all.some((l) => l.includes('several gateway endpoints')), 'one endpoint, no warning')
  backend.close('bob', 1011, 'x'.repeat(300))
  const closed = await bob.closed
  t.equal(closed.code, 1000, 'a code a backend may not use becomes 1000')
  t.equal(closed.reason.length, 123, 'the reason is cut to 123 bytes')
  await call(calls, 'close bob 1000')
  t.same(backend.users(), [], 'no user is left once both closed')
})

t.test('bad frames from a gateway are counted and skipped; the link stays up', async (t) => {
  const { backend, url, calls, logger } = await startBackend(t)
  const gateway = await fakeGateway(url, { token: BACKEND_TOKEN })
  gateway.send('{"event": "hello", ')
  gateway.send({ event: 'explode', user: 'alice' })
  gateway.send({ event: 'open', user: 'alice' })
  gateway.send({ event: 'message', user: '', params: {}, data: 1 })
  gateway.ws.send(Buffer.from('binary'))
  gateway.send([hello('gw-bad'), 7, { event: 'sync', users: [] }, { event: 'open', user: 'alice', claims: {}, params: {} }])
  t.equal(await call(calls, 'open alice'), 'open alice {}', 'the good events of a batch with bad ones still count')
  t.equal(backend.stats.badFrames, 6, 'every bad frame and batch item is counted')
  t.ok(logger.lines.all.some((l) => l.includes('event.claims: is required')), 'the log names the bad field')

  gateway.send({ event: 'message', user: 'mallory', params: {}, data: 'who?' })
  gateway.send({ event: 'close', user: 'mallory', params: {}, code: 1000, reason: '' })
  gateway.send({ event: 'message', user: 'alice', params: {}, data: 'still here' })
  t.equal(await call(calls, 'message alice'), 'message alice "still here"', 'the link still carries messages after bad frames')
  t.equal(backend.stats.strayEvents, 2, 'events about unknown users are ignored')

  backend.send('alice', 'reply')
  t.same(await gateway.actions.next(), { action: 'send', user: 'alice', data: 'reply' }, 'actions still flow')
})

t.test('a gateway speaking another protocol version is refused with 1002', async (t) => {
  const { url } = await startBackend(t)
  const gateway = await fakeGateway(url, { token: BACKEND_TOKEN })
  gateway.send(hello('gw-future', 'lobby', 99))
  const { code, reason } = await gateway.closed
  t.equal(code, 1002, 'a newer protocol version is refused with 1002')
  t.match(reason, /unsupported protocol version 99/, 'the reason names the version')
})

t.test('handlers that throw or reject are counted; later events still run, in order', async (t) => {
  const logger = captureLogger()
  const order: string[] = []
  let release!: () => void
  let blocked!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const started = new Promise<void>((resolve) => { blocked = resolve })
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger }, {
    onOpen: async (user) => {
      if (user === 'slow') {
        blocked()
        await gate
      }
      order.push(`open ${user}`)
      if (user === 'rejects') throw new Error('async boom')
    },
    onMessage: (user) => {
      order.push(`message ${user}`)
      if (user === 'throws') throw new Error('sync boom')
    }
  })
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  const failures: string[] = []
  backend.on('handlerError', ({ handler, user }) => failures.push(`${handler} ${user}`))
  const gateway = await fakeGateway(url, { token: BACKEND_TOKEN })
  gateway.send([hello('gw-1'), { event: 'open', user: 'slow', claims: {}, params: {} }])
  gateway.send({ event: 'message', user: 'slow', params: {}, data: 1 })
  gateway.send({ event: 'open', user: 'throws', claims: {}, params: {} })
  gateway.send({ event: 'message', user: 'throws', params: {}, data: 1 })
  gateway.send({ event: 'open', user: 'rejects', claims: {}, params: {} })
  const done = once(backend, 'synced')
  gateway.send({ event: 'sync', users: [] })
  await started
  t.same(order, [], 'nothing ran past the pending onOpen')
  release()
  await done
  t.same(order, ['open slow', 'message slow', 'open throws', 'message throws', 'open rejects'], 'an async onOpen delays the events behind it')
  t.same(failures, ['onMessage throws', 'onOpen rejects'], 'each handler failure is reported with its handler and user')
  t.equal(backend.stats.handlerErrors, 2, 'both handler failures are counted')
})

t.test('a reconnecting gateway keeps its users; its sync closes the ones that left and opens the new ones', async (t) => {
  const { backend, url, calls } = await startBackend(t, { linkGraceMs: 60000 })
  const claims = { sub: 'x' }
  const first = await fakeGateway(url, { token: BACKEND_TOKEN })
  first.send([hello('gw-1'), {
    event: 'sync',
    users: [
      { user: 'alice', claims, params: {} },
      { user: 'bob', claims, params: {} },
      { user: 'erin', claims, params: { room: 'a' } }
    ]
  }])
  t.equal(await call(calls, 'open'), 'open alice {}', 'sync opens alice')
  t.equal(await call(calls, 'open'), 'open bob {}', 'sync opens bob')
  t.equal(await call(calls, 'open'), 'open erin {"room":"a"}', 'sync opens erin with her params')
  t.same(backend.users(), ['alice', 'bob', 'erin'], 'sync opened everyone it listed')

  const dropped = once(backend, 'linkClosed')
  first.ws.terminate()
  await dropped
  t.same(backend.users(), ['alice', 'bob', 'erin'], 'users are held while their gateway may come back')
  t.equal(backend.send('alice', 1), 0, 'actions for a held user are dropped')

  const second = await fakeGateway(url, { token: BACKEND_TOKEN })
  const synced = once(backend, 'synced')
  second.send([hello('gw-1'), {
    event: 'sync',
    users: [
      { user: 'bob', claims, params: {} },
      { user: 'erin', claims, params: { room: 'b' } },
      { user: 'carol', claims, params: {} }
    ]
  }])
  await synced
  t.same(calls.pending, [
    'close alice 1006 absent from gateway sync',
    'close erin 1006 absent from gateway sync',
    'open erin {"room":"b"}',
    'open carol {}'
  ], 'closes first, then opens; bob, unchanged, sees nothing')
  t.same(backend.users().sort(), ['bob', 'carol', 'erin'], 'after the second sync: bob kept, carol new, erin reopened')
  backend.send('bob', 'on the new link')
  t.same(await second.actions.next(), { action: 'send', user: 'bob', data: 'on the new link' }, 'an action goes down the new link')
})

t.test('a gateway that does not come back within linkGraceMs loses its users (1006)', async (t) => {
  const { backend, url, calls } = await startBackend(t, { linkGraceMs: 50 })
  const gateway = await fakeGateway(url, { token: BACKEND_TOKEN })
  gateway.send([hello('gw-gone'), { event: 'sync', users: [] }, { event: 'open', user: 'alice', claims: {}, params: {} }])
  await call(calls, 'open alice')
  gateway.ws.terminate()
  t.equal(await call(calls, 'close alice'), 'close alice 1006 gateway link lost', 'onClose says the gateway link was lost')
  t.same(backend.users(), [], 'the gone gateway\'s users are gone')
})

t.test('a gateway that stops answering pings is dropped', async (t) => {
  const { backend, url } = await startBackend(t, { pingIntervalMs: 30, linkGraceMs: 10 })
  const gateway = await fakeGateway(url, { token: BACKEND_TOKEN, autoPong: false })
  gateway.send([hello('gw-mute'), { event: 'sync', users: [] }])
  await once(backend, 'linkClosed')
  t.equal((await gateway.closed).code, 1006, 'terminated, not closed politely')
})

t.test('two gateway links into one backend: each action goes down the link that holds its user', async (t) => {
  const logger = captureLogger()
  const { handlers, calls } = recorder()
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger }, {
    ...handlers,
    // relay `{to, text}` to another player, wherever they are connected
    onMessage: (user, data, info) => {
      handlers.onMessage(user, data, info)
      const { to, text } = data as { to: string, text: string }
      backend.send(to, { from: user, text })
    }
  })
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  const bothLinked = new Promise<void>((resolve) => {
    let count = 0
    backend.on('synced', () => { if (++count === 2) resolve() })
  })
  const server = (nodeId: string) => ({ server: { host: '127.0.0.1', port: 0, nodeId } })
  const gatewayA = await startGateway(t, testConfig([lobbyEndpoint(url)], server('gw-a')))
  const gatewayB = await startGateway(t, testConfig([lobbyEndpoint(url)], server('gw-b')))
  await bothLinked

  const alice = await connect(gatewayA.url('/lobby'), { token: tokenFor('alice') })
  const bob = await connect(gatewayB.url('/lobby'), { token: tokenFor('bob') })
  await call(calls, 'open alice')
  await call(calls, 'open bob')
  t.equal(backend.connection('alice')?.gateway, 'gw-a', 'alice is held by gateway A')
  t.equal(backend.connection('bob')?.gateway, 'gw-b', 'bob is held by gateway B')

  alice.ws.send(JSON.stringify({ to: 'bob', text: 'hi from A' }))
  t.equal(await bob.next(), '{"from":"alice","text":"hi from A"}', 'a message on link A answered on link B')
  bob.ws.send(JSON.stringify({ to: 'alice', text: 'hi from B' }))
  t.equal(await alice.next(), '{"from":"bob","text":"hi from B"}', 'a message on link B answered on link A')
  t.equal(backend.send(['alice', 'bob'], 'split'), 2, 'one send, split by link')
  t.equal(await alice.next(), 'split', 'alice gets her part of the split send')
  t.equal(await bob.next(), 'split', 'bob gets his part of the split send')
  backend.broadcast('everyone')
  t.equal(await alice.next(), 'everyone', 'alice on gateway A gets the broadcast')
  t.equal(await bob.next(), 'everyone', 'bob on gateway B gets the broadcast')

  // the same user arriving through the other gateway replaces the first connection
  const carolOnA = await connect(gatewayA.url('/lobby'), { token: tokenFor('carol') })
  await call(calls, 'open carol')
  await connect(gatewayB.url('/lobby'), { token: tokenFor('carol') })
  t.equal(await call(calls, 'close carol'), 'close carol 4409 replaced by a connection through another gateway', 'the first carol is closed with 4409')
  t.equal(await call(calls, 'open carol'), 'open carol {}', 'then the second carol opens')
  t.same(await carolOnA.closed, { code: 4409, reason: 'replaced by a connection through another gateway' }, 'the replaced socket gets 4409 and the reason')
  await logger.lines.next((l) => l.includes('does not track') && l.includes('"user":"carol"'))
  t.equal(backend.connection('carol')?.gateway, 'gw-b', 'the late close from gateway A did not remove carol')
  t.equal((await gatewayA.get('/readyz')).status, 200, "gateway A's link stayed up")
})

t.test('a restarted example backend under connected players rebuilds its state from sync', async (t) => {
  const logger = captureLogger()
  const first = await onFreePort(async (port) => await startLobby({ port, token: BACKEND_TOKEN, logger }))
  const synced = once(first.backend, 'synced')
  const gateway = await startGateway(t, testConfig([lobbyEndpoint(first.url)]))
  await synced
  const alice = await connect(gateway.url('/lobby'), { token: tokenFor('alice') })
  await nextOfType(alice.messages, 'welcome')
  const bob = await connect(gateway.url('/lobby'), { token: tokenFor('bob') })
  await nextOfType(bob.messages, 'welcome')
  const carol = await connect(gateway.url('/lobby'), { token: tokenFor('carol') })
  await nextOfType(carol.messages, 'welcome')
  t.same(first.lobby.online(), ['alice', 'bob', 'carol'], 'the lobby knows every player')

  await first.stop()
  // carol leaves while the lobby is down; the gateway queues her close
  carol.ws.close()
  await carol.closed
  const second = await startLobby({ port: first.port, token: BACKEND_TOKEN, logger })
  t.teardown(() => second.stop())
  t.same(second.lobby.online(), [], 'a new process knows nobody')
  await once(second.backend, 'synced')
  const rebuilt = second.lobby.online()
  t.ok(rebuilt.includes('alice') && rebuilt.includes('bob'), 'sync brought back everyone connected')
  await nextOfType(alice.messages, 'welcome')
  await nextOfType(bob.messages, 'welcome')

  // carol's close was queued by the gateway while the lobby was down and comes right after the sync,
  // so by the time alice's new chat line reaches bob, it has been handled
  alice.ws.send(JSON.stringify({ type: 'chat', text: 'are you still there?' }))
  const line = await nextOfType<{ from: string, text: string }>(bob.messages, 'chat')
  t.same(second.lobby.online().sort(), ['alice', 'bob'], 'the rebuilt lobby matches who is really connected')
  t.same([line.from, line.text], ['alice', 'are you still there?'], 'the restarted lobby works')
})
