/**
 * Issue 15 item 3, the reconnect storm: what each player upgrade costs the
 * gateway was cut. What the cuts must keep: ws holds no set of its own of
 * the player sockets (the relay's registry is the one), and in a burst of
 * handshakes, whose `open` events now share link frames, every client's
 * `open` still reaches the backend once, before its first message, while
 * bad handshakes in the same burst are refused and announce nothing.
 */
import t from 'tap'
import { backendFor, type ReceivedEvent } from './helpers/backend.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { connect, refusal } from './helpers/client.js'
import { tokenFor, unsignedToken } from './helpers/tokens.js'

t.test('ws keeps no set of player sockets: the registry is the one record of them', async (t) => {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby/:room', backend: backend.url }]))
  await backend.next('hello')
  const client = await connect(gateway.url('/lobby/r1'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  t.equal(gateway.app.websocketServer.clients, undefined, 'ws tracks no clients')
  t.equal(await gateway.metric('gatehouse_connections', { endpoint: 'lobby' }), 1, 'the gateway counts the player')
  client.ws.close()
  await backend.next('close', 'alice')
  t.equal(await gateway.metric('gatehouse_connections', { endpoint: 'lobby' }), 0, 'and forgets it once closed')
})

t.test('a burst of handshakes: each open reaches the backend once, before its message; bad ones in the burst announce nothing', async (t) => {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby/:room', backend: backend.url }]))
  await backend.next('hello')
  const users = Array.from({ length: 40 }, (_, i) => `burst-${i}`)
  const [clients, refused] = await Promise.all([
    Promise.all(users.map(async (user) => {
      const client = await connect(gateway.url('/lobby/r1'), { token: tokenFor(user) })
      client.ws.send(JSON.stringify({ from: user }))
      return client
    })),
    Promise.all([
      refusal(gateway.url('/lobby/r1'), { token: unsignedToken('mallory') }),
      refusal(gateway.url('/lobby/r1'), { token: 'a.b' }),
      refusal(gateway.url('/lobby/r1'))
    ])
  ])
  t.same(refused.map((r) => r.status), [401, 401, 401], 'an unsigned token, a malformed one and none: 401 each')
  const seen: ReceivedEvent[] = []
  while (seen.filter((e) => e.event === 'message').length < users.length) seen.push(await backend.events.next((e) => e.event === 'open' || e.event === 'message', 20000, 'an open or a message'))
  for (const user of users) {
    const mine = seen.filter((e) => e.user === user).map((e) => e.event)
    t.same(mine, ['open', 'message'], `${user}: one open, then its message`)
  }
  t.notOk(seen.some((e) => e.user === 'mallory'), 'the refused handshake opened nothing')
  for (const client of clients) client.ws.close()
})
