/**
 * Refresh edges (PROTOCOL.md §5d, §6a, §7): a close while a session switches
 * sockets, a token valid for months, the two halves of a refresh across
 * nodes in either order, a player using the gateway's own close codes, and
 * the browser client's refresh on a `duplicate: "allow"` endpoint.
 */
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { WebSocket as NodeWebSocket, WebSocketServer } from 'ws'
import { Roster } from '../src/sdk/roster.js'
import { GatehouseClient } from '../src/client/index.js'
import { gatewayWithBackends } from './helpers/setup.js'
import { connect } from './helpers/client.js'
import { tokenFor } from './helpers/tokens.js'
import { Inbox } from './helpers/waiter.js'

async function game (t: { teardown (fn: () => unknown): void }, link: Record<string, unknown> = {}, endpoint: Record<string, unknown> = {}) {
  const { gateway, backends } = await gatewayWithBackends(t, [
    { name: 'game', path: '/game/:matchId', link: { minReconnectDelayMs: 20, maxReconnectDelayMs: 200, ...link }, ...endpoint }
  ], {}, { sync: true })
  return { backend: backends.game, gateway }
}

const NodeWs = NodeWebSocket as unknown as typeof WebSocket

t.test('a send then a close while the session switches sockets: the send reaches the new socket before the close', async (t) => {
  const { backend, gateway } = await game(t, { refresh: true })
  const old = await connect(gateway.url('/game/m1'), { token: tokenFor('kim', { n: 1 }) })
  await backend.next('open', 'kim')
  old.ws.pause() // the old socket's 4410 stays unread: the switch is under way
  const fresh = await connect(gateway.url('/game/m1?refresh=1'), { token: tokenFor('kim', { n: 2 }) })
  await backend.next('refresh', 'kim')
  backend.send({ action: 'send', user: 'kim', data: 'you won' })
  backend.send({ action: 'close', user: 'kim', code: 1000, reason: 'game over' })
  t.same(await fresh.closed, { code: 1000, reason: 'game over' }, 'the new socket gets the backend\'s close')
  t.same(fresh.messages.all, ['you won'], 'the send before the close reached the player first')
  t.equal((await backend.next('close', 'kim')).code, 1000, 'the backend hears one close')
  t.equal(await gateway.metric('gatehouse_dropped_actions_total', { reason: 'resume_expired' }), 0, 'nothing dropped')
  old.ws.resume()
})

t.test('the client plans the refresh of a token valid for months without a refresh loop', async (t) => {
  const { backend, gateway } = await game(t, { refresh: true })
  let minted = 0
  const exp = Math.floor(Date.now() / 1000) + 60 * 24 * 3600 // 60 days: past setTimeout's 24.8
  const client = new GatehouseClient(gateway.url('/game/m1'), { token: () => tokenFor('ivy', { exp, n: ++minted }), WebSocket: NodeWs })
  t.teardown(() => client.close())
  await new Promise<void>((resolve) => client.on('open', () => resolve()))
  await backend.next('open', 'ivy')
  // a round trip through the gateway and the backend: far longer than the 1 ms an overflowing timer waits
  const pong = new Promise<string>((resolve) => client.on('message', ({ data }) => resolve(String(data))))
  client.send('ping')
  await backend.next('message', 'ivy')
  backend.send({ action: 'send', user: 'ivy', data: 'pong' })
  t.equal(await pong, 'pong', 'the round trip completed')
  t.equal(minted, 1, 'token() was called once: no refresh started')
  t.same(backend.events.all.filter((e) => e.event === 'refresh').length, 0, 'the backend saw no refresh')
})

t.test('the SDK roster: the marked open before the old node\'s 4410 close is one refresh; the late close is stale', async (t) => {
  const cluster = new Set(['a1', 'a2'])
  const roster = new Roster<string>({ sameCluster: (x, y) => cluster.has(x) && cluster.has(y), isOpen: () => true })
  roster.open('a1', 'gus', { n: 1 }, { room: 'x' })
  t.same(roster.open('a2', 'gus', { n: 2 }, { room: 'x' }, undefined, true).map((c) => c.kind), ['refresh'], 'the open marked refresh first: a refresh, no close, no open')
  t.equal(roster.linkOf('gus'), 'a2', 'the user is on the new link')
  t.same(roster.get('gus')?.claims, { n: 2 }, 'with the new claims')
  t.same(roster.close('a1', 'gus', 4410, 'moved'), [], 'the old link\'s late 4410 is stale: ignored')
  t.equal(roster.linkOf('gus'), 'a2', 'the user stays on the new link')
  t.same(roster.close('a2', 'gus', 1000, 'bye').map((c) => c.kind), ['close'], 'her real close later is a close')

  // bad input: other params, or a link of another cluster, is not a refresh
  roster.open('a1', 'hal', {}, { room: 'x' })
  t.same(roster.open('a2', 'hal', {}, { room: 'y' }, undefined, true).map((c) => c.kind), ['close', 'open'], 'a marked open with other params: close then open')
  t.same(roster.open('b1', 'hal', {}, { room: 'y' }, undefined, true).map((c) => c.kind), ['close', 'open'], 'a marked open from another cluster: close then open')
})

t.test('a player closing with a gateway close code is reported as 4000; an application code passes through', async (t) => {
  const { backend, gateway } = await game(t)
  for (const [user, code] of [['p4410', 4410], ['p4409', 4409], ['p4401', 4401]] as const) {
    const player = await connect(gateway.url('/game/m1'), { token: tokenFor(user) })
    await backend.next('open', user)
    player.ws.close(code, 'mine')
    const close = await backend.next('close', user)
    t.same([close.code, close.reason], [4000, 'client used a gateway close code'], `a client's ${code} is reported as 4000`)
  }
  const own = await connect(gateway.url('/game/m1'), { token: tokenFor('app') })
  await backend.next('open', 'app')
  own.ws.close(4001, 'left the lobby')
  const close = await backend.next('close', 'app')
  t.same([close.code, close.reason], [4001, 'left the lobby'], 'an application code and reason pass through')
})

t.test('duplicate allow: the client closes the old socket a refresh left, and frames are not duplicated', async (t) => {
  const { backend, gateway } = await game(t, { refresh: true }, { duplicate: 'allow' })
  let minted = 0
  const client = new GatehouseClient(gateway.url('/game/m1'), { token: () => tokenFor('nia', { n: ++minted }), refreshAheadMs: 0, refreshGraceMs: 200, WebSocket: NodeWs })
  t.teardown(() => client.close())
  const got: string[] = []
  const closes: number[] = []
  client.on('message', ({ data }) => got.push(String(data)))
  client.on('closed', ({ code }) => closes.push(code))
  await new Promise<void>((resolve) => client.on('open', () => resolve()))
  const first = await backend.next('open', 'nia')
  const refreshed = new Promise<void>((resolve) => client.on('refreshed', () => resolve()))
  client.refresh()
  await refreshed
  const second = await backend.next('open', 'nia')
  t.not(second.conn, first.conn, 'under allow the refresh is one more connection')
  const ended = await backend.next('close', 'nia', 15000)
  t.same([ended.conn, ended.code], [first.conn, 1000], 'the client closed the old connection with 1000')
  const before = got.length
  backend.send({ action: 'send', user: 'nia', data: 'once' })
  backend.send({ action: 'send', user: 'nia', data: 'end' })
  await new Promise<void>((resolve) => client.on('message', ({ data }) => { if (String(data) === 'end') resolve() }))
  t.same(got.slice(before), ['once', 'end'], 'each frame reached the player once')
  t.same(closes, [], 'the client saw no close')
  t.equal(client.state, 'open', 'and is open')
})

t.test('duplicate allow: a resume with a new token is a refresh event carrying the connection id', async (t) => {
  const { backend, gateway } = await game(t, { refresh: true }, { duplicate: 'allow', resumeGraceMs: 10000 })
  const first = await connect(gateway.url('/game/m1'), { token: tokenFor('carol', { n: 1 }) })
  const opened = await backend.next('open', 'carol')
  t.type(opened.conn, 'string', 'the open carries a conn')
  first.ws.terminate()
  await gateway.logged(/holding its session/)
  const again = await connect(gateway.url('/game/m1'), { token: tokenFor('carol', { n: 2 }) })
  const refresh = await backend.next('refresh', 'carol')
  t.same([refresh.conn, (refresh.claims as Record<string, unknown>).n], [opened.conn, 2], 'the refresh names the resumed conn and carries the new claims')
  backend.send({ action: 'send', conn: opened.conn, data: 'to the conn' })
  t.equal(await again.messages.next(() => true, 10000, 'the frame to the conn'), 'to the conn', 'sends to that conn reach the new socket')
  t.equal(backend.events.all.filter((e) => e.user === 'carol' && (e.event === 'close' || e.event === 'open')).length, 1, 'one open in all, no close')
})

t.test('a second refresh does not cut short the socket the first one left: what the gateway still sends there arrives', async (t) => {
  // a stand-in gateway that is slow to close a refresh's old socket (4410), as a loaded one is
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  const sockets = new Inbox<NodeWebSocket>()
  wss.on('connection', (socket) => {
    socket.on('error', () => {})
    sockets.push(socket)
  })
  t.teardown(() => {
    for (const socket of wss.clients) socket.terminate()
    wss.close()
  })
  let minted = 0
  const client = new GatehouseClient(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/game/m1`, { token: () => tokenFor('zed', { n: ++minted }), refreshAheadMs: 0, refreshGraceMs: 10000, WebSocket: NodeWs })
  const received = new Inbox<string>()
  const events = new Inbox<string>()
  client.on('message', ({ data }) => received.push(String(data)))
  client.on('open', () => events.push('open'))
  client.on('refreshed', () => events.push('refreshed'))
  client.on('closed', ({ code }) => events.push(`closed ${code}`))
  const first = await sockets.next(undefined, 10000, 'the first socket')
  await events.next((e) => e === 'open', 10000, 'the client open')
  client.refresh()
  await sockets.next(undefined, 10000, 'the first refresh\'s socket')
  await events.next((e) => e === 'refreshed', 10000, 'the first refresh')
  client.refresh()
  await sockets.next(undefined, 10000, 'the second refresh\'s socket')
  await events.next((e) => e === 'refreshed', 10000, 'the second refresh')
  first.send('still on the first socket')
  t.equal(await received.next(undefined, 5000, 'the frame sent on the first socket'), 'still on the first socket', 'a frame the gateway sends on a refresh\'s old socket before closing it reaches the page')
  // bad input: garbage where a frame's text should be is still only a message, and the first socket's 4410 ends it quietly
  first.send(Buffer.from([0xc3, 0x28]), { binary: true })
  await received.next(undefined, 5000, 'the binary frame')
  first.close(4410, 'session moved to a refreshed connection')
  client.close()
  t.same(events.all.filter((e) => e.startsWith('closed')), ['closed 1000'], 'no close reached the page but its own')
})
