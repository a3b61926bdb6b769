/** One connection per (endpoint, user): the replace and reject policies and their ordering. */
import t from 'tap'
import { gatewayWithBackends } from './helpers/setup.js'
import { connect, refusal } from './helpers/client.js'
import { tokenFor } from './helpers/tokens.js'
import { eventually } from './helpers/cluster.js'

/** A game endpoint with this duplicate-session policy (none: the default). */
async function gameEndpoint (t: { teardown (fn: () => unknown): void }, duplicate?: 'replace' | 'reject') {
  const { gateway, backends } = await gatewayWithBackends(t, [{ name: 'game', path: '/game/:matchId', ...(duplicate ? { duplicate } : {}) }])
  return { backend: backends.game, gateway }
}

t.test('replace (the default): the old socket gets 4409, and its close precedes the new open', async (t) => {
  const { backend, gateway } = await gameEndpoint(t)
  const first = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  const second = await connect(gateway.url('/game/m2'), { token: tokenFor('alice') })
  t.same(await first.closed, { code: 4409, reason: 'replaced by a newer connection' }, 'the old socket gets 4409 and why')
  const close = await backend.events.next((e) => e.user === 'alice')
  const open = await backend.events.next((e) => e.user === 'alice')
  t.same([close.event, close.code, close.params], ['close', 4409, { matchId: 'm1' }], 'close of the old connection first')
  t.same([open.event, open.params], ['open', { matchId: 'm2' }], 'then open of the new one')
  second.ws.send('still me')
  const message = await backend.next('message', 'alice')
  t.same(message.params, { matchId: 'm2' }, 'messages carry the new connection\'s params')
  backend.send({ action: 'send', user: 'alice', data: 'to the new socket' })
  t.equal(await second.next(), 'to the new socket', 'sends reach the new socket')
})

t.test('a late close of a replaced socket never removes its successor', async (t) => {
  const { backend, gateway } = await gameEndpoint(t)
  // the old client does not answer the close handshake, so its socket ends later
  const first = await connect(gateway.url('/game/a'), { token: tokenFor('bob') })
  first.ws.pause()
  await backend.next('open', 'bob')
  const second = await connect(gateway.url('/game/b'), { token: tokenFor('bob') })
  await backend.next('close', 'bob')
  await backend.next('open', 'bob')
  first.ws.terminate()
  await first.closed
  // the gateway has seen the old socket end once its server holds only the successor's
  const held = async (): Promise<number> => await new Promise((resolve, reject) => gateway.app.server.getConnections((err, n) => err ? reject(err) : resolve(n)))
  await eventually(held, (n) => n === 1, 15000, 'the gateway to see the old socket end')
  backend.send({ action: 'send', user: 'bob', data: 'after the late close' })
  t.equal(await second.next(), 'after the late close', 'the successor still receives')
  second.ws.close(1000)
  const last = await backend.next('close', 'bob')
  t.same(last.params, { matchId: 'b' }, 'the successor\'s own close carries its params')
  t.equal(backend.events.all.filter((e) => e.event === 'close').length, 2, 'one close per connection, no more')
})

t.test('reject: a second connection gets 409 and the first is untouched', async (t) => {
  const { backend, gateway } = await gameEndpoint(t, 'reject')
  const first = await connect(gateway.url('/game/m1'), { token: tokenFor('carol') })
  await backend.next('open', 'carol')
  const second = await refusal(gateway.url('/game/m1'), { token: tokenFor('carol') })
  t.equal(second.status, 409, 'the second connection is refused with 409')
  t.equal(JSON.parse(second.body).code, 'GW_ERR_DUPLICATE', 'the refusal names GW_ERR_DUPLICATE')
  first.ws.send('ping')
  t.equal((await backend.next('message', 'carol')).data, 'ping', 'the first connection still carries messages')
  t.equal(backend.events.all.filter((e) => e.event === 'open').length, 1, 'the backend saw only the first open')
  first.ws.close()
  await backend.next('close', 'carol')
  await connect(gateway.url('/game/m1'), { token: tokenFor('carol') })
  t.equal((await backend.next('open', 'carol')).user, 'carol', 'after the first leaves, the user may connect again')
})

t.test('the same user on different endpoints is two clients', async (t) => {
  const { gateway, backends: { lobby, game } } = await gatewayWithBackends(t, [{ name: 'lobby', path: '/lobby' }, { name: 'game', path: '/game' }])
  const a = await connect(gateway.url('/lobby'), { token: tokenFor('dave') })
  const b = await connect(gateway.url('/game'), { token: tokenFor('dave') })
  await lobby.next('open', 'dave')
  await game.next('open', 'dave')
  lobby.send({ action: 'send', user: 'dave', data: 'from the lobby' })
  game.send({ action: 'send', user: 'dave', data: 'from the game' })
  t.equal(await a.next(), 'from the lobby', 'the lobby socket was not replaced by the game one')
  t.equal(await b.next(), 'from the game', 'the game socket gets the game\'s send')
  t.notOk(lobby.events.all.some((e) => e.event === 'close'), 'the lobby saw no close')
  t.equal(await gateway.metric('gatehouse_connections'), 2, 'both sockets are counted')
})

t.test('a dead client (no close frame) is reported with 1006', async (t) => {
  const { backend, gateway } = await gameEndpoint(t)
  const client = await connect(gateway.url('/game/x'), { token: tokenFor('erin') })
  await backend.next('open', 'erin')
  client.ws.terminate()
  const close = await backend.next('close', 'erin')
  t.equal(close.code, 1006, 'the backend hears 1006')
  t.equal(await gateway.metric('gatehouse_connections'), 0, 'the dead client is no longer counted')
})
