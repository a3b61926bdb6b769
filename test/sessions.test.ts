/** One connection per (endpoint, user): the replace and reject policies and their ordering. */
import t from 'tap'
import { backendFor } from './helpers/backend.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { connect, refusal } from './helpers/client.js'
import { tokenFor } from './helpers/tokens.js'

async function setup (t: { teardown (fn: () => unknown): void }, duplicate?: 'replace' | 'reject') {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'game', path: '/game/:matchId', backend: backend.url, ...(duplicate ? { duplicate } : {}) }]))
  await backend.next('hello')
  return { backend, gateway }
}

t.test('replace (the default): the old socket gets 4409, and its close precedes the new open', async (t) => {
  const { backend, gateway } = await setup(t)
  const first = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  const second = await connect(gateway.url('/game/m2'), { token: tokenFor('alice') })
  t.same(await first.closed, { code: 4409, reason: 'replaced by a newer connection' })
  const close = await backend.events.next((e) => e.user === 'alice')
  const open = await backend.events.next((e) => e.user === 'alice')
  t.same([close.event, close.code, close.params], ['close', 4409, { matchId: 'm1' }], 'close of the old connection first')
  t.same([open.event, open.params], ['open', { matchId: 'm2' }], 'then open of the new one')
  second.ws.send('still me')
  const message = await backend.next('message', 'alice')
  t.same(message.params, { matchId: 'm2' })
  backend.send({ action: 'send', user: 'alice', data: 'to the new socket' })
  t.equal(await second.next(), 'to the new socket')
})

t.test('a late close of a replaced socket never removes its successor', async (t) => {
  const { backend, gateway } = await setup(t)
  // the old client does not answer the close handshake, so its socket ends later
  const first = await connect(gateway.url('/game/a'), { token: tokenFor('bob') })
  first.ws.pause()
  await backend.next('open', 'bob')
  const second = await connect(gateway.url('/game/b'), { token: tokenFor('bob') })
  await backend.next('close', 'bob')
  await backend.next('open', 'bob')
  first.ws.terminate()
  await first.closed
  backend.send({ action: 'send', user: 'bob', data: 'after the late close' })
  t.equal(await second.next(), 'after the late close', 'the successor still receives')
  second.ws.close(1000)
  const last = await backend.next('close', 'bob')
  t.same(last.params, { matchId: 'b' })
  t.equal(backend.events.all.filter((e) => e.event === 'close').length, 2, 'one close per connection, no more')
})

t.test('reject: a second connection gets 409 and the first is untouched', async (t) => {
  const { backend, gateway } = await setup(t, 'reject')
  const first = await connect(gateway.url('/game/m1'), { token: tokenFor('carol') })
  await backend.next('open', 'carol')
  const second = await refusal(gateway.url('/game/m1'), { token: tokenFor('carol') })
  t.equal(second.status, 409)
  t.equal(JSON.parse(second.body).code, 'GW_ERR_DUPLICATE')
  first.ws.send('ping')
  t.equal((await backend.next('message', 'carol')).data, 'ping')
  t.equal(backend.events.all.filter((e) => e.event === 'open').length, 1)
  first.ws.close()
  await backend.next('close', 'carol')
  await connect(gateway.url('/game/m1'), { token: tokenFor('carol') })
  t.equal((await backend.next('open', 'carol')).user, 'carol', 'after the first leaves, the user may connect again')
})

t.test('the same user on different endpoints is two clients', async (t) => {
  const lobby = await backendFor(t)
  const game = await backendFor(t)
  const gateway = await startGateway(t, testConfig([
    { name: 'lobby', path: '/lobby', backend: lobby.url },
    { name: 'game', path: '/game', backend: game.url }
  ]))
  const a = await connect(gateway.url('/lobby'), { token: tokenFor('dave') })
  const b = await connect(gateway.url('/game'), { token: tokenFor('dave') })
  await lobby.next('open', 'dave')
  await game.next('open', 'dave')
  lobby.send({ action: 'send', user: 'dave', data: 'from the lobby' })
  game.send({ action: 'send', user: 'dave', data: 'from the game' })
  t.equal(await a.next(), 'from the lobby', 'the lobby socket was not replaced by the game one')
  t.equal(await b.next(), 'from the game')
  t.notOk(lobby.events.all.some((e) => e.event === 'close'), 'the lobby saw no close')
  t.equal(await gateway.metric('gatehouse_connections'), 2)
})

t.test('a dead client (no close frame) is reported with 1006', async (t) => {
  const { backend, gateway } = await setup(t)
  const client = await connect(gateway.url('/game/x'), { token: tokenFor('erin') })
  await backend.next('open', 'erin')
  client.ws.terminate()
  const close = await backend.next('close', 'erin')
  t.equal(close.code, 1006)
  t.equal(await gateway.metric('gatehouse_connections'), 0)
})
