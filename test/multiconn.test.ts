/**
 * Several connections per user (`duplicate: "allow"`, PROTOCOL.md §6a), on
 * one gateway: two tabs of one player, each with its own `conn`; a send to
 * the user reaches both, a `conn` target one; `maxPerUser` closes the
 * oldest first; `sync`, acks replay, resume and pools carry connection ids.
 * The default `replace` keeps its events free of `conn`.
 */
import t from 'tap'
import { WebSocket } from 'ws'
import { pick } from '../src/pool/hrw.js'
import { ConfigError, parseConfig } from '../src/index.js'
import { GatehouseBackend } from '../src/sdk/index.js'
import { gatewayWithBackends } from './helpers/setup.js'
import { backendFor, type ReceivedEvent, type TestBackend } from './helpers/backend.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { connect, refusal, type TestClient } from './helpers/client.js'
import { tokenFor } from './helpers/tokens.js'
import { Inbox } from './helpers/waiter.js'
import { onFreePort } from './helpers/ports.js'
import { BACKEND_TOKEN, captureLogger } from './sdk-fixtures.js'
import { AckLedger } from '../src/sdk/ack-ledger.js'
import { Roster } from '../src/sdk/roster.js'

type Teardown = { teardown (fn: () => unknown): void }

async function allowing (t: Teardown, endpoint: Record<string, unknown> = {}) {
  const { gateway, backends } = await gatewayWithBackends(t, [
    { name: 'lobby', path: '/lobby', duplicate: 'allow', ...endpoint },
    { name: 'game', path: '/game' }
  ], {}, { sync: true })
  return { gateway, backend: backends.lobby, game: backends.game }
}

/** Opens a tab of `user` and returns it with the `open` event the backend got for it. */
async function tab (url: string, backend: TestBackend, user: string): Promise<{ client: TestClient, conn: string }> {
  const client = await connect(url, { token: tokenFor(user) })
  const open = await backend.next('open', user)
  return { client, conn: open.conn as string }
}

function eventsOf (backend: TestBackend, kind: string, user: string): ReceivedEvent[] {
  return backend.events.all.filter((e) => e.event === kind && e.user === user)
}

t.test('two tabs of one user: each its own conn; a send to the user reaches both, a conn target one', async (t) => {
  const { gateway, backend } = await allowing(t)
  const one = await tab(gateway.url('/lobby'), backend, 'alice')
  const two = await tab(gateway.url('/lobby'), backend, 'alice')
  t.type(one.conn, 'string', 'the open carries a conn')
  t.not(one.conn, two.conn, 'each tab its own conn')
  t.equal(eventsOf(backend, 'close', 'alice').length, 0, 'the second tab closed nothing')
  t.equal(await gateway.metric('gatehouse_connections', { endpoint: 'lobby' }), 2, 'two connections counted')

  one.client.ws.send(JSON.stringify({ conn: two.conn, user: 'bob' }))
  const message = await backend.next('message', 'alice')
  t.same([message.conn, message.data], [one.conn, { conn: two.conn, user: 'bob' }], 'a message carries its own tab\'s conn; the client cannot forge another')

  backend.send({ action: 'send', user: 'alice', data: 'to both' })
  t.equal(await one.client.next(), 'to both', 'a send to the user reaches the first tab')
  t.equal(await two.client.next(), 'to both', 'and the second')

  backend.send({ action: 'send', conn: two.conn, data: 'only two' })
  backend.send({ action: 'send', user: 'alice', data: 'after' })
  t.equal(await two.client.next(), 'only two', 'a conn target reaches its tab')
  t.equal(await one.client.next(), 'after', 'and not the other, whose next frame is the later send')
  t.equal(await two.client.next(), 'after', 'the later send reaches the targeted tab too')

  backend.send({ action: 'close', conn: one.conn, code: 4000, reason: 'one tab' })
  t.same(await one.client.closed, { code: 4000, reason: 'one tab' }, 'a close to a conn closes that tab')
  const closed = await backend.next('close', 'alice')
  t.same([closed.conn, closed.code], [one.conn, 4000], 'its close event names the conn')
  backend.send({ action: 'send', user: 'alice', data: 'still here' })
  t.equal(await two.client.next(), 'still here', 'the other tab stays open')

  const three = await tab(gateway.url('/lobby'), backend, 'alice')
  backend.send({ action: 'close', user: 'alice', code: 4001, reason: 'all tabs' })
  t.equal((await two.client.closed).code, 4001, 'a close to the user closes one tab')
  t.equal((await three.client.closed).code, 4001, 'and the other')
  const conns = [(await backend.next('close', 'alice')).conn, (await backend.next('close', 'alice')).conn]
  t.same(conns.sort(), [two.conn, three.conn].sort(), 'one close event per connection')
})

t.test('replace endpoints are unchanged: no conn on their events, a conn target finds nobody', async (t) => {
  const { gateway, game } = await allowing(t)
  const client = await connect(gateway.url('/game'), { token: tokenFor('bob') })
  const open = await game.next('open', 'bob')
  client.ws.send('hi')
  const message = await game.next('message', 'bob')
  t.notOk('conn' in open, 'no conn on a replace endpoint\'s open')
  t.notOk('conn' in message, 'nor on its messages')
  t.notOk(game.frames.all.some((f) => f.includes('"conn"')), 'no frame to a replace endpoint\'s backend holds a conn')
  game.send({ action: 'send', conn: 'nobody#1', data: 'lost' })
  game.send({ action: 'send', user: 'bob', data: 'found' })
  t.equal(await client.next(), 'found', 'a conn target reaches no client of a replace endpoint')
  t.equal(await gateway.metric('gatehouse_dropped_actions_total', { endpoint: 'game', reason: 'not_connected' }), 1, 'and is counted as not connected')
  client.ws.close(1000)
  t.notOk('conn' in await game.next('close', 'bob'), 'nor on its close')
})

t.test('past maxPerUser the oldest connection is closed with 4409, its close before the new open', async (t) => {
  const { gateway, backend } = await allowing(t, { maxPerUser: 2 })
  const one = await tab(gateway.url('/lobby'), backend, 'carol')
  const two = await tab(gateway.url('/lobby'), backend, 'carol')
  const three = await connect(gateway.url('/lobby'), { token: tokenFor('carol') })
  t.same(await one.client.closed, { code: 4409, reason: 'replaced by a newer connection' }, 'the oldest tab is closed with 4409')
  const close = await backend.next('close', 'carol')
  const open = await backend.next('open', 'carol')
  const all = backend.events.all
  t.equal(close.conn, one.conn, 'the close is the oldest connection\'s')
  t.ok(all.indexOf(close) < all.indexOf(open), 'and reaches the backend before the new open')
  t.not(open.conn, two.conn, 'the new open is a new connection')
  backend.send({ action: 'send', user: 'carol', data: 'two left' })
  t.equal(await two.client.next(), 'two left', 'the second tab stays')
  t.equal(await three.next(), 'two left', 'next to the new one')
  t.equal(await gateway.metric('gatehouse_connections', { endpoint: 'lobby' }), 2, 'maxPerUser connections, no more')
})

t.test('sync after the backend link drops lists every connection of a user', async (t) => {
  const { gateway, backend } = await allowing(t)
  const one = await tab(gateway.url('/lobby'), backend, 'dave')
  const two = await tab(gateway.url('/lobby'), backend, 'dave')
  backend.kill()
  await backend.next('hello')
  const sync = await backend.next('sync')
  const listed = (sync.users as Array<{ user: string, conn: string }>).map((u) => `${u.user} ${u.conn}`).sort()
  t.same(listed, [`dave ${one.conn}`, `dave ${two.conn}`].sort(), 'both connections, each with its conn')
  backend.send({ action: 'send', conn: one.conn, data: 'after sync' })
  t.equal(await one.client.next(), 'after sync', 'conn targets work on the new link')
})

t.test('acks: a replay carries each event\'s conn', async (t) => {
  const { gateway, backends } = await gatewayWithBackends(t, [
    { name: 'lobby', path: '/lobby', duplicate: 'allow', link: { acks: true, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }
  ], {}, { sync: true })
  const backend = backends.lobby
  const one = await tab(gateway.url('/lobby'), backend, 'erin')
  const two = await tab(gateway.url('/lobby'), backend, 'erin')
  one.client.ws.send('from one')
  two.client.ws.send('from two')
  const first = [await backend.next('message', 'erin'), await backend.next('message', 'erin')]
  backend.kill() // nothing acked: everything is replayed
  await backend.next('hello')
  const sync = await backend.next('sync')
  t.same([sync.users, sync.seq], [[], 0], 'the roster as of the last ack: nobody yet')
  const replayed = [await backend.next('open', 'erin'), await backend.next('open', 'erin'), await backend.next('message', 'erin'), await backend.next('message', 'erin')]
  t.same(replayed.map((e) => e.conn), [one.conn, two.conn, one.conn, two.conn], 'opens and messages replayed with their conns')
  t.same(replayed.slice(2).map((e) => e.seq), first.map((e) => e.seq), 'and their original seqs')
  backend.send({ action: 'ack', seq: replayed[3].seq })
  backend.kill()
  await backend.next('hello')
  const acked = await backend.next('sync')
  const listed = (acked.users as Array<{ conn: string }>).map((u) => u.conn).sort()
  t.same([listed, acked.seq], [[one.conn, two.conn].sort(), replayed[3].seq], 'once acked, the sync lists both connections as of that seq')
})

t.test('each connection has its own share of the queue: a flooding tab is closed (1008), the other tab\'s messages still go', async (t) => {
  const first = await onFreePort(async (port) => await backendFor(t, { port }))
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', duplicate: 'allow', backend: first.url }], {
    queue: { maxClientBytes: 2048 },
    limits: { messagesPerSecond: 1000, burst: 1000 }
  }))
  await first.next('sync')
  const flooder = await tab(gateway.url('/lobby'), first, 'jo')
  const quiet = await tab(gateway.url('/lobby'), first, 'jo')
  await first.close() // the backend is away: events queue in the gateway
  for (let i = 0; i < 40 && flooder.client.ws.readyState === WebSocket.OPEN; i++) flooder.client.ws.send('x'.repeat(200))
  t.equal((await flooder.client.closed).code, 1008, 'the flooding tab passes its share and is closed (1008)')
  quiet.client.ws.send('from the quiet tab')
  const second = await backendFor(t, { port: first.port })
  await second.next('sync')
  const message = await second.events.next((e) => e.event === 'message' && e.conn === quiet.conn, 10000, 'the quiet tab\'s message')
  t.equal(message.data, 'from the quiet tab', 'the quiet tab\'s message was queued: its share is its own')
  t.equal(quiet.client.ws.readyState, WebSocket.OPEN, 'and the quiet tab is still open')
})

t.test('resume: a new socket with the same params takes over the held connection, keeping its conn', async (t) => {
  const { gateway, backends } = await gatewayWithBackends(t, [
    { name: 'room', path: '/room/:id', duplicate: 'allow', resumeGraceMs: 10000 }
  ], {}, { sync: true })
  const backend = backends.room
  const one = await tab(gateway.url('/room/a'), backend, 'fay')
  const two = await tab(gateway.url('/room/a'), backend, 'fay')
  one.client.ws.terminate()
  await gateway.logged(/holding its session/)
  backend.send({ action: 'send', user: 'fay', data: 'while away' })
  t.equal(await two.client.next(), 'while away', 'the live tab gets a send to the user at once')
  const back = await connect(gateway.url('/room/a'), { token: tokenFor('fay') })
  t.equal(await back.next(), 'while away', 'the resumed socket gets what its held connection kept')
  back.ws.send('back')
  const message = await backend.next('message', 'fay')
  t.equal(message.conn, one.conn, 'the resumed socket speaks as the held connection')
  t.equal(eventsOf(backend, 'open', 'fay').length, 2, 'no new open')
  t.equal(eventsOf(backend, 'close', 'fay').length, 0, 'no close')
  backend.send({ action: 'send', conn: one.conn, data: 'to the resumed' })
  t.equal(await back.next(), 'to the resumed', 'its conn reaches the new socket')

  const other = await tab(gateway.url('/room/b'), backend, 'fay')
  t.not(other.conn, one.conn, 'a socket with other params is a new connection')
  t.equal(eventsOf(backend, 'close', 'fay').length, 0, 'and ends none of the others')
})

t.test('pools: each connection is routed by its own key, to its own member', async (t) => {
  const members = [await backendFor(t), await backendFor(t)]
  const ids = ['m0', 'm1']
  // two matches that HRW puts on different members
  const matches: string[] = []
  for (let i = 0; matches.length < 2 && i < 1000; i++) {
    const won = pick(`x${i}`, ids.map((id) => ({ id, weight: 1 })))?.id
    if (won === ids[matches.length]) matches.push(`x${i}`)
  }
  const gateway = await startGateway(t, testConfig([{
    name: 'game',
    path: '/game/:matchId',
    duplicate: 'allow',
    backend: { urls: members.map((m, i) => ({ id: ids[i], url: m.url })), route: 'params.matchId', minReconnectDelayMs: 20, maxReconnectDelayMs: 200 }
  }]))
  for (const member of members) await member.next('sync')
  const one = await tab(gateway.url(`/game/${matches[0]}`), members[0], 'gus')
  const two = await tab(gateway.url(`/game/${matches[1]}`), members[1], 'gus')
  one.client.ws.send('in match one')
  two.client.ws.send('in match two')
  const atZero = await members[0].next('message', 'gus')
  const atOne = await members[1].next('message', 'gus')
  t.same([atZero.conn, atZero.data], [one.conn, 'in match one'], 'the first tab\'s messages go to its match\'s member')
  t.same([atOne.conn, atOne.data], [two.conn, 'in match two'], 'the second tab\'s to the other member')
  members[0].send({ action: 'send', user: 'gus', data: 'from m0' })
  t.equal(await one.client.next(), 'from m0', 'a member\'s send to the user reaches the tab routed to it')
  t.equal(await two.client.next(), 'from m0', 'and every other tab of the user on the endpoint')
  one.client.ws.close(1000)
  t.equal((await members[0].next('close', 'gus')).conn, one.conn, 'a tab\'s close goes to its own member')
  two.client.ws.send('still two')
  t.equal((await members[1].next('message', 'gus')).data, 'still two', 'the other tab keeps its member')
  t.equal(members[1].events.all.filter((e) => e.event === 'close').length, 0, 'which never heard a close')
})

t.test('the SDK: handlers see conn, the roster knows a user\'s connections, sendToConnection reaches one', async (t) => {
  const calls = new Inbox<string>()
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, {
    onOpen: (user, _claims, _params, { conn }) => calls.push(`open ${user} ${conn}`),
    onMessage: (user, data, { conn }) => calls.push(`message ${user} ${conn} ${JSON.stringify(data)}`),
    onClose: (user, code, _reason, { conn }) => calls.push(`close ${user} ${conn} ${code}`)
  })
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', duplicate: 'allow', backend: { url, token: BACKEND_TOKEN } }]))
  const synced = new Promise((resolve) => backend.once('synced', resolve))
  await synced
  const one = await connect(gateway.url('/lobby'), { token: tokenFor('hal') })
  const first = await calls.next((c) => c.startsWith('open hal'))
  const two = await connect(gateway.url('/lobby'), { token: tokenFor('hal') })
  const second = await calls.next((c) => c.startsWith('open hal'))
  const [connOne, connTwo] = [first.split(' ')[2], second.split(' ')[2]]
  t.not(connOne, connTwo, 'onOpen sees each connection\'s conn')
  t.same(backend.connections('hal').map((c) => c.conn), [connOne, connTwo], 'the roster lists both connections, oldest first')
  t.same(backend.users(), ['hal'], 'one user')
  t.ok(backend.sendToConnection(connTwo, 'just two'), 'sendToConnection sends')
  t.equal(backend.send('hal', 'both'), 1, 'send to the user counts one user')
  t.equal(await two.next(), 'just two', 'the targeted connection gets its frame')
  t.equal(await one.next(), 'both', 'the other gets only the send to the user')
  t.equal(await two.next(), 'both', 'which reaches the targeted one too')
  one.ws.send('"hi"')
  t.equal(await calls.next((c) => c.startsWith('message hal')), `message hal ${connOne} "hi"`, 'onMessage sees the sender\'s conn')
  t.ok(backend.closeConnection(connOne, 4000, 'bye one'), 'closeConnection asks the gateway')
  t.equal((await one.closed).code, 4000, 'that connection is closed')
  t.equal(await calls.next((c) => c.startsWith('close hal')), `close hal ${connOne} 4000`, 'onClose sees its conn')
  t.same(backend.connections('hal').map((c) => c.conn), [connTwo], 'the roster keeps the other')
  t.notOk(backend.sendToConnection(connOne, 'gone'), 'bad input: a closed connection is not sent to')
  t.notOk(backend.sendToConnection('no-such-conn', 'x'), 'nor an unknown one')
  t.notOk(backend.sendToConnection(connTwo, 12, { binary: true }), 'nor binary data that is not base64 text')
  t.equal(backend.stats.droppedActions, 3, 'each counted as dropped')
  t.equal(two.ws.readyState, WebSocket.OPEN, 'the remaining connection is untouched')
})

t.test('binary link encoding: an allow endpoint\'s binary frames keep their conn (JSON form), binary sends reach one or all connections', async (t) => {
  const calls = new Inbox<{ conn?: string, data: unknown, binary: boolean }>()
  const opens = new Inbox<string>()
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, {
    onOpen: (_user, _claims, _params, { conn }) => opens.push(conn as string),
    onMessage: (_user, data, { conn, binary }) => calls.push({ conn, data, binary })
  })
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', duplicate: 'allow', backend: { url, token: BACKEND_TOKEN, encoding: 'binary' } }]))
  await new Promise((resolve) => backend.once('synced', resolve))
  const one = await connect(gateway.url('/lobby'), { token: tokenFor('kai') })
  await opens.next()
  const two = await connect(gateway.url('/lobby'), { token: tokenFor('kai') })
  await opens.next()
  one.ws.send(Buffer.from([1, 2, 3]))
  const got = await calls.next()
  t.equal(got.binary, true, 'a binary frame is a binary message')
  t.equal(got.data, Buffer.from([1, 2, 3]).toString('base64'), 'in the JSON form, base64')
  const conns = backend.connections('kai').map((c) => c.conn)
  t.equal(got.conn, conns[0], 'carrying the sender\'s conn')
  t.ok(backend.sendToConnection(conns[1] as string, Buffer.from([9, 9])), 'bytes to one connection go out')
  t.ok(Buffer.from([9, 9]).equals(await two.next() as Buffer), 'and reach that connection as a binary frame')
  t.equal(backend.send('kai', Buffer.from([7])), 1, 'bytes to the user go out as a binary record')
  t.ok(Buffer.from([7]).equals(await one.next() as Buffer), 'reaching the first connection')
  t.ok(Buffer.from([7]).equals(await two.next() as Buffer), 'and the second, which got nothing else in between')
})

t.test('SDK bookkeeping: the roster and a replay\'s pending roster keep one entry per connection', async (t) => {
  const roster = new Roster<string>({ sameCluster: (a, b) => a[0] === b[0], isOpen: () => true })
  roster.open('a1', 'lee', {}, { room: '1' }, 'a#1')
  roster.open('a1', 'lee', {}, { room: '2' }, 'a#2')
  roster.open('b1', 'lee', {}, {}, 'b#1')
  t.same(roster.connectionsOf('lee').map((p) => p.conn), ['a#1', 'a#2', 'b#1'], 'three connections of one user, none replacing another')
  t.same(roster.users(), ['lee'], 'one user')
  const changes = roster.sync('a1', [{ user: 'lee', conn: 'a#2', claims: {}, params: { room: '2' } }, { user: 'lee', conn: 'a#3', claims: {}, params: {} }])
  t.same(changes.map((c) => `${c.kind} ${c.presence.conn}`), ['close a#1', 'open a#3'], 'a sync closes the connection it no longer lists and opens the new one, by conn')
  t.notOk(roster.holds('a1', 'lee', 'a#1'), 'the closed connection is gone')
  t.ok(roster.holds('a1', 'lee', 'a#2') && roster.holds('b1', 'lee', 'b#1'), 'the others stay')
  t.same(roster.close('b1', 'lee', 1000, '', 'a#2'), [], 'bad input: a close for a connection from a link that does not hold it is ignored')
  t.same(roster.close('a1', 'lee', 1000, '', 'nope'), [], 'and one for an unknown connection')
  roster.open('c1', 'lee', {}, {}, 'c#1')
  roster.open('c2', 'lee', {}, {}, 'c#2')
  t.same([...roster.group(['lee', 'ghost']).byLink.keys()].sort(), ['a1', 'b1', 'c1'], 'a user is sent to down one link per cluster')
  t.same(roster.group(['ghost']).missing, ['ghost'], 'unknown users are missing')

  const ledger = new AckLedger('session')
  ledger.attach()
  for (let seq = 1; seq <= 4; seq++) ledger.receive(seq)
  ledger.attach()
  t.equal(ledger.sync(1, [{ user: 'lee', conn: 'x#1', claims: {}, params: {} }]), undefined, 'a sync behind what was handed waits for the replay')
  ledger.receive(2)
  ledger.replayed(2, { event: 'open', user: 'lee', conn: 'x#2', params: {} })
  ledger.receive(3)
  ledger.replayed(3, { event: 'close', user: 'lee', conn: 'x#1', params: {} })
  ledger.receive(4)
  const pending = ledger.replayed(4, { event: 'open', user: 'lee', conn: 'x#3', params: {} })
  t.same(pending?.users.map((u) => u.conn).sort(), ['x#2', 'x#3'], 'the pending roster applies each replayed open and close to its own connection')
})

t.test('bad input: configs, actions and frames', async (t) => {
  const base = testConfig([{ name: 'lobby', path: '/lobby', backend: 'ws://127.0.0.1:1', duplicate: 'allow' }])
  const problems = (endpoint: Record<string, unknown>, extra: Record<string, unknown> = {}): string[] => {
    try {
      parseConfig({ ...base, ...extra, endpoints: [{ ...(base.endpoints as object[])[0], ...endpoint }] })
      return []
    } catch (err) {
      if (err instanceof ConfigError) return err.problems
      throw err
    }
  }
  t.same(problems({ maxPerUser: 0 }), ['endpoints[0].maxPerUser: must be >= 1'], 'maxPerUser 0 names the field')
  t.same(problems({ maxPerUser: -3 }), ['endpoints[0].maxPerUser: must be >= 1'], 'a negative maxPerUser too')
  t.same(problems({ maxPerUser: 1.5 }), ['endpoints[0].maxPerUser: must be integer'], 'a fraction is refused')
  t.same(problems({ maxPerUser: '2' }), ['endpoints[0].maxPerUser: must be integer'], 'a string is refused')
  t.same(problems({ maxPerUser: 100000 }), ['endpoints[0].maxPerUser: must be <= 1000'], 'a huge bound is refused')
  t.same(problems({ duplicate: 'replace', maxPerUser: 2 }), ['endpoints[0].maxPerUser: applies only with duplicate "allow", but duplicate is "replace"'], 'maxPerUser without allow is a mistake, named')
  t.same(problems({}, { cluster: { redis: 'redis://127.0.0.1:1' } }), [], 'allow runs in a cluster (test/multiconn-cluster.test.ts)')
  t.same(problems({ maxPerUser: 1 }), [], 'maxPerUser 1 is fine')

  const { gateway, backend } = await allowing(t, { maxPerUser: 1 })
  const one = await tab(gateway.url('/lobby'), backend, 'ivy')
  const two = await connect(gateway.url('/lobby'), { token: tokenFor('ivy') })
  t.equal((await one.client.closed).code, 4409, 'maxPerUser 1: a second tab replaces the first')
  t.equal((await backend.next('close', 'ivy')).conn, one.conn, 'whose close is reported')
  const open = await backend.next('open', 'ivy')
  t.not(open.conn, one.conn, 'with a new conn')
  const wrong = await refusal(gateway.url('/lobby'), { token: 'not-a-jwt' })
  t.equal(wrong.status, 401, 'a bad token is refused before any connection exists')
  backend.send('not json')
  backend.send({ action: 'send', conn: '', data: 1 })
  backend.send({ action: 'send', conn: open.conn, user: 'ivy', data: 1 })
  backend.send({ action: 'close', conn: 7 })
  backend.send({ action: 'send', conn: 'x'.repeat(300), data: 1 })
  backend.send({ action: 'send', conn: 'lobby#999', data: 'to nobody' })
  backend.send({ action: 'close', conn: 'lobby#999' })
  backend.send({ action: 'send', conn: open.conn, data: 'survived' })
  t.equal(await two.next(), 'survived', 'the link stays up and the valid action goes through')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { endpoint: 'lobby', reason: 'invalid_message' }), 4, 'each malformed conn action is counted')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { endpoint: 'lobby', reason: 'invalid_json' }), 1, 'the frame that is not JSON is counted')
  t.equal(await gateway.metric('gatehouse_dropped_actions_total', { endpoint: 'lobby', reason: 'not_connected' }), 2, 'actions for an unknown conn are dropped and counted')
  two.ws.terminate()
  t.equal((await backend.next('close', 'ivy')).conn, open.conn, 'a dead peer is reported with its conn')
})
