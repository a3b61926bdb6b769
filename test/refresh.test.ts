/**
 * Refresh without a close (PROTOCOL.md §5d, issue 14 item 2): a player who
 * connects again with `?refresh=1`, a fresh token, the same user and params
 * while the old socket is open keeps their session; the old socket gets
 * 4410, nothing sent either way is lost, and the backend sees a `refresh`
 * event (opted in) or nothing (not opted in), never close + open.
 */
import t from 'tap'
import { once } from 'node:events'
import { GatehouseBackend } from '../src/sdk/index.js'
import { Roster } from '../src/sdk/roster.js'
import { CloseCodes } from '../protocol/index.js'
import { WebSocket as NodeWebSocket } from 'ws'
import { GatehouseClient } from '../src/client/index.js'
import { BACKEND_TOKEN, call, captureLogger, recorder } from './sdk-fixtures.js'
import { gatewayWithBackends } from './helpers/setup.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { connect, refusal } from './helpers/client.js'
import { eventually } from './helpers/cluster.js'
import { signWith, SECRET, tokenFor } from './helpers/tokens.js'

/** A game endpoint; `link` adds backend options (`refresh`, `acks`). */
async function game (t: { teardown (fn: () => unknown): void }, link: Record<string, unknown> = {}, endpoint: Record<string, unknown> = {}) {
  const { gateway, backends, hellos } = await gatewayWithBackends(t, [
    { name: 'game', path: '/game/:matchId', link: { minReconnectDelayMs: 20, maxReconnectDelayMs: 200, ...link }, ...endpoint }
  ], {}, { sync: true })
  return { backend: backends.game, gateway, hello: hellos.game }
}

t.test('opted in: the session moves to the new socket, the old gets 4410, the backend sees one refresh event and nothing is lost', async (t) => {
  const { backend, gateway, hello } = await game(t, { refresh: true, acks: true })
  t.equal(hello.refresh, true, 'hello announces refresh events')
  const first = await connect(gateway.url('/game/m1'), { token: tokenFor('alice', { n: 1 }) })
  await backend.next('open', 'alice')
  const oldFrames: string[] = []
  first.ws.on('message', (data) => oldFrames.push(data.toString()))
  first.ws.send('before the refresh')
  await backend.next('message', 'alice')

  // the backend writes a numbered stream while the player switches sockets
  let sent = 0
  const pump = setInterval(() => { if (sent < 200) backend.send({ action: 'send', user: 'alice', data: String(++sent) }) }, 1)
  t.teardown(() => clearInterval(pump))
  // the stream has begun on the old socket before the refresh
  await first.messages.next((m) => m === '1', 10000, 'the first frame of the stream')
  const second = await connect(gateway.url('/game/m1?refresh=1'), { token: tokenFor('alice', { n: 2 }) })
  // the client's inbox listens from before the open, so nothing the new socket gets is missed
  const newFrames = second.messages.all as string[]
  t.same(await first.closed, { code: 4410, reason: CloseCodes.REFRESHED.reason }, 'the old socket ends with 4410 and why')
  second.ws.send('after the refresh')
  const refresh = await backend.next('refresh', 'alice')
  t.same([refresh.claims && (refresh.claims as Record<string, unknown>).n, refresh.params, typeof refresh.seq], [2, { matchId: 'm1' }, 'number'], 'the refresh event carries the new claims, the params and a seq')
  await eventually(async () => sent >= 200 && oldFrames.length + newFrames.filter((m) => m !== 'live').length >= 200, (done) => done, 15000, 'all 200 frames')
  clearInterval(pump)
  const all = [...oldFrames, ...newFrames]
  t.same(all, Array.from({ length: 200 }, (_, i) => String(i + 1)), 'every frame reached the player, in order: the old socket\'s, then the new one\'s')
  const message = await backend.next('message', 'alice')
  t.equal(message.data, 'after the refresh', 'the new socket\'s message reaches the backend')
  const kinds = backend.events.all.filter((e) => e.user === 'alice').map((e) => e.event)
  t.same(kinds, ['open', 'message', 'refresh', 'message'], 'the backend saw no close and no second open')
  t.equal(await gateway.metric('gatehouse_refreshes_total', { from: 'node' }), 1, 'the refresh is counted')
  t.equal(await gateway.metric('gatehouse_client_closes_total'), 0, 'no client close was counted')
  backend.send({ action: 'send', user: 'alice', data: 'live' })
  t.equal(await second.messages.next((m) => m === 'live', 10000, 'the live frame'), 'live', 'live frames go to the new socket')
  second.ws.close(1000)
  t.equal((await backend.next('close', 'alice')).code, 1000, 'one close when she really leaves')
})

t.test('frames wait for the old socket: a player slow to read it still gets everything in order', async (t) => {
  const { backend, gateway } = await game(t, { refresh: true })
  const old = await connect(gateway.url('/game/m1'), { token: tokenFor('kim', { n: 1 }) })
  const zed = await connect(gateway.url('/game/m1'), { token: tokenFor('zed') })
  await backend.next('open', 'kim')
  await backend.next('open', 'zed')
  const arrivals: string[] = []
  old.ws.on('message', (data) => arrivals.push(`old:${data.toString()}`))
  old.ws.pause() // the old socket's frames wait in the kernel, unread
  for (const n of [1, 2, 3]) backend.send({ action: 'send', user: 'kim', data: `a${n}` })
  const fresh = await connect(gateway.url('/game/m1?refresh=1'), { token: tokenFor('kim', { n: 2 }) })
  fresh.ws.on('message', (data) => arrivals.push(`new:${data.toString()}`))
  await backend.next('refresh', 'kim')
  for (const n of [1, 2, 3]) backend.send({ action: 'send', user: 'kim', data: `b${n}` })
  // actions are carried out in order: once zed's close is reported, kim's b frames have been handled
  backend.send({ action: 'close', user: 'zed', code: 4000, reason: 'marker' })
  await backend.next('close', 'zed')
  await zed.closed
  old.ws.resume()
  await old.closed
  await eventually(async () => arrivals.length, (n) => n >= 6, 15000, 'six frames')
  t.same(arrivals, ['old:a1', 'old:a2', 'old:a3', 'new:b1', 'new:b2', 'new:b3'], 'the old socket\'s frames, then the new one\'s: none lost, none overtaken')
  const out = await eventually(async () => await gateway.metric('gatehouse_messages_out_total'), (n) => n >= 6, 5000, 'six frames counted').catch(() => -1)
  t.equal(out, 6, 'each frame counted once as delivered, the ones kept during the switch too')
})

t.test('not opted in: the backend sees nothing, and the next sync carries the new claims', async (t) => {
  const { backend, gateway, hello } = await game(t)
  t.equal(hello.refresh, undefined, 'hello says nothing of refresh')
  const first = await connect(gateway.url('/game/m1'), { token: tokenFor('bob', { n: 1 }) })
  await backend.next('open', 'bob')
  const second = await connect(gateway.url('/game/m1?refresh=1'), { token: tokenFor('bob', { n: 2 }) })
  t.equal((await first.closed).code, 4410, 'the old socket gets 4410')
  second.ws.send('still bob')
  t.equal((await backend.next('message', 'bob')).data, 'still bob', 'messages continue')
  t.same(backend.events.all.filter((e) => e.user === 'bob').map((e) => e.event), ['open', 'message'], 'no refresh, close or open event')
  backend.kill()
  const sync = await backend.next('sync', undefined, 15000)
  const listed = (sync.users as Array<{ user: string, claims: Record<string, unknown> }>).find((u) => u.user === 'bob')
  t.equal(listed?.claims.n, 2, 'the sync after a link blip carries the refreshed claims')
})

t.test('not opted in, with acks, the open still unacknowledged: the sync after the ack carries the new claims', async (t) => {
  const { backend, gateway } = await game(t, { acks: true })
  const first = await connect(gateway.url('/game/m1'), { token: tokenFor('lou', { n: 1 }) })
  const open = await backend.next('open', 'lou')
  const second = await connect(gateway.url('/game/m1?refresh=1'), { token: tokenFor('lou', { n: 2 }) })
  await first.closed
  second.ws.send('marker')
  const marker = await backend.next('message', 'lou')
  backend.send({ action: 'ack', seq: open.seq })
  backend.send({ action: 'ack', seq: marker.seq })
  // the ack is in once an action sent after it has been carried out
  backend.send({ action: 'send', user: 'lou', data: 'after the acks' })
  t.equal(await second.next(), 'after the acks', 'the acks were taken')
  backend.kill()
  const sync = await backend.next('sync', undefined, 15000)
  const listed = (sync.users as Array<{ user: string, claims: Record<string, unknown> }>).find((u) => u.user === 'lou')
  t.equal(listed?.claims.n, 2, 'the open that was still queued took the refreshed claims for the roster')
})

t.test('a resume within resumeGraceMs with a new token: new claims for the backend (event and later syncs)', async (t) => {
  const { backend, gateway } = await game(t, { refresh: true }, { resumeGraceMs: 10000 })
  const first = await connect(gateway.url('/game/m1'), { token: tokenFor('carol', { n: 1 }) })
  await backend.next('open', 'carol')
  first.ws.terminate()
  await gateway.logged(/holding its session/)
  await connect(gateway.url('/game/m1'), { token: tokenFor('carol', { n: 2 }) })
  const refresh = await backend.next('refresh', 'carol')
  t.equal((refresh.claims as Record<string, unknown>).n, 2, 'the resume with a new token is told as a refresh')
  backend.kill()
  const sync = await backend.next('sync', undefined, 15000)
  const listed = (sync.users as Array<{ user: string, claims: Record<string, unknown> }>).find((u) => u.user === 'carol')
  t.equal(listed?.claims.n, 2, 'the next sync carries the new claims, not the old ones')
  t.equal(backend.events.all.filter((e) => e.user === 'carol' && (e.event === 'close' || e.event === 'open')).length, 1, 'one open in all, no close')
})

t.test('enforceExpiry: a player who refreshes in time is never closed with 4401; one who does not is, once exp has passed', async (t) => {
  const { backend, gateway } = await game(t, {}, { enforceExpiry: true })
  const now = Math.floor(Date.now() / 1000)
  const exp = now + 2
  const dan = await connect(gateway.url('/game/m1'), { token: tokenFor('dan', { exp }) })
  const eve = await connect(gateway.url('/game/m1'), { token: tokenFor('eve', { exp }) })
  await backend.next('open', 'dan')
  await backend.next('open', 'eve')
  const dan2 = await connect(gateway.url('/game/m1?refresh=1'), { token: tokenFor('dan', { exp: now + 3600 }) })
  t.equal((await dan.closed).code, 4410, 'the old socket of the refresh ends with 4410')
  const eveClosed = await eve.closed
  t.equal(eveClosed.code, 4401, 'the player who did not refresh is closed with 4401')
  t.ok(Date.now() >= exp * 1000, 'and not before her token\'s exp')
  // the old token's deadline has passed for dan too: his session is still live
  dan2.ws.send('still here')
  t.equal((await backend.next('message', 'dan')).data, 'still here', 'the refreshed player keeps talking')
  t.equal(dan2.ws.readyState, dan2.ws.OPEN, 'the refreshed socket is open after the old exp')
  t.equal(await gateway.metric('gatehouse_client_closes_total', { code: '4401' }), 1, 'one 4401 in all: eve\'s')
})

t.test('bad input: another sub, other params, a malformed marker, a wrong token, a dead old socket', async (t) => {
  const { backend, gateway } = await game(t, { refresh: true })
  const alice = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')

  // another sub is another user: alice stays, mallory opens; never an identity change
  const mallory = await connect(gateway.url('/game/m1?refresh=1'), { token: tokenFor('mallory') })
  t.equal((await backend.next('open', 'mallory')).user, 'mallory', 'a refresh with another sub opens that user')
  t.equal(alice.ws.readyState, alice.ws.OPEN, 'alice\'s socket is untouched')
  mallory.ws.close(1000)
  await backend.next('close', 'mallory')

  // a wrong token: refused before the upgrade, alice untouched
  t.equal((await refusal(gateway.url('/game/m1?refresh=1'), { token: signWith('not-the-secret-at-all-not-at-all', 'HS256', { sub: 'alice' }) })).status, 401, 'a refresh with a bad token gets 401')
  t.equal((await refusal(gateway.url('/game/m1?refresh=1'), {})).status, 401, 'a refresh without a token gets 401')
  t.equal(alice.ws.readyState, alice.ws.OPEN, 'alice\'s socket is still open')

  // other params: a normal replace, close + open
  const elsewhere = await connect(gateway.url('/game/m2?refresh=1'), { token: tokenFor('alice') })
  t.equal((await alice.closed).code, 4409, 'a refresh with other params is a replace: 4409')
  const close = await backend.next('close', 'alice')
  const open = await backend.next('open', 'alice')
  t.same([close.code, open.params], [4409, { matchId: 'm2' }], 'the backend sees close then open, as for any replace')

  // a malformed marker is no marker: a replace
  const plain = await connect(gateway.url('/game/m2?refresh=yes'), { token: tokenFor('alice') })
  t.equal((await elsewhere.closed).code, 4409, 'refresh=yes is not a refresh: 4409')
  await backend.next('close', 'alice')
  await backend.next('open', 'alice')

  // a dead old socket (it never answers the close handshake): the switch ends after its timeout, and kept frames follow
  plain.ws.pause()
  const fresh = await connect(gateway.url('/game/m2?refresh=1'), { token: tokenFor('alice', { n: 3 }) })
  await backend.next('refresh', 'alice')
  backend.send({ action: 'send', user: 'alice', data: 'kept while the old socket hangs' })
  t.equal(await fresh.next(15000), 'kept while the old socket hangs', 'the frame reaches the new socket once the old one is cut')
  t.same(backend.events.all.filter((e) => e.event === 'close' && e.user === 'alice').length, 2, 'no close for the refresh')

  // malformed frames on the new socket still take the usual path
  fresh.ws.send(Buffer.alloc(70000))
  t.equal((await fresh.closed).code, 1009, 'an oversized frame on the refreshed socket closes it with 1009')
  t.equal((await backend.next('close', 'alice')).code, 1009, 'and the backend hears that close once')
})

t.test('the SDK: onRefresh for a refresh event, claims kept for sends; no onClose/onOpen', async (t) => {
  const { handlers, calls } = recorder()
  const sdk = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, handlers)
  const { url } = await sdk.listen()
  t.teardown(() => sdk.stop())
  const linked = once(sdk, 'synced')
  const gateway = await startGateway(t, testConfig([{ name: 'game', path: '/game/:matchId', backend: { url, token: BACKEND_TOKEN, refresh: true } }]))
  await linked
  const first = await connect(gateway.url('/game/m1'), { token: tokenFor('fay', { n: 1 }) })
  await call(calls, 'open fay')
  const second = await connect(gateway.url('/game/m1?refresh=1'), { token: tokenFor('fay', { n: 2 }) })
  t.match(await call(calls, 'refresh fay'), /"n":2/, 'onRefresh gets the new claims')
  await first.closed
  t.equal(sdk.send('fay', 'to the refreshed socket'), 1, 'sends still find fay')
  t.equal(await second.next(), 'to the refreshed socket', 'and reach her new socket')
  t.notOk(calls.all.some((c) => c.startsWith('close fay')), 'no onClose')
  t.equal(calls.all.filter((c) => c.startsWith('open fay')).length, 1, 'one onOpen')
  t.notOk(gateway.logs.some((line) => line.includes(SECRET)), 'no secret in a log line')
})

t.test('the SDK roster: new claims in a sync are a refresh; a 4410 close in a cluster waits for the open marked refresh', async (t) => {
  const cluster = new Set(['a', 'b'])
  const roster = new Roster<string>({ sameCluster: (x, y) => cluster.has(x) && cluster.has(y), isOpen: () => true })
  roster.open('a', 'gus', { n: 1 }, {})
  t.same(roster.sync('a', [{ user: 'gus', claims: { n: 2 }, params: {} }]).map((c) => c.kind), ['refresh'], 'same params, new claims: one refresh')
  t.same(roster.get('gus')?.claims, { n: 2 }, 'the roster holds the new claims')
  t.same(roster.sync('a', [{ user: 'gus', claims: { n: 2 }, params: { room: 'x' } }]).map((c) => c.kind), ['close', 'open'], 'new params: close then open')

  t.same(roster.close('a', 'gus', 4410, 'moved').map((c) => c.kind), ['moving'], 'a 4410 close from a cluster link: moving, no close yet')
  t.same(roster.sync('a', []).length, 0, 'a sync of the old link does not close a moving user')
  t.same(roster.open('b', 'gus', { n: 3 }, { room: 'x' }, undefined, true).map((c) => c.kind), ['refresh'], 'the open marked refresh on another link of the cluster: a refresh')
  t.equal(roster.linkOf('gus'), 'b', 'the user is on the new link')

  roster.close('b', 'gus', 4410, 'moved')
  const presence = roster.get('gus')
  t.ok(presence?.moving, 'moving again')
  t.same(roster.open('b', 'gus', { n: 4 }, { room: 'x' }).map((c) => c.kind), ['close', 'open'], 'an open not marked refresh is a normal close then open')
  const moving = roster.close('b', 'gus', 4410, 'moved')
  t.same(roster.settleMove((moving[0]).presence).map((c) => c.kind === 'close' && c.code), [4410], 'no open in time: the close (4410) is reported')
  t.equal(roster.get('gus'), undefined, 'and the user is gone')

  const lone = new Roster<string>()
  lone.open('x', 'hal', {}, {})
  t.same(lone.close('x', 'hal', 4410, 'moved').map((c) => c.kind), ['close'], 'outside a cluster a 4410 close is a close')
  t.same(lone.refresh('x', 'nobody', {}), [], 'a refresh event for an unknown user changes nothing')
})

t.test('the client refreshes on its own ahead of exp: no close, no 4401, nothing lost either way', async (t) => {
  const { backend, gateway } = await game(t, { refresh: true }, { enforceExpiry: true })
  let minted = 0
  const token = (): string => {
    minted++
    return tokenFor('ivy', { exp: Math.floor(Date.now() / 1000) + 3, n: minted })
  }
  const client = new GatehouseClient(gateway.url('/game/m1'), { token, refreshAheadMs: 1500, WebSocket: NodeWebSocket as unknown as typeof WebSocket })
  t.teardown(() => client.close())
  const got: string[] = []
  const closes: number[] = []
  let refreshed = 0
  client.on('message', ({ data }) => got.push(String(data)))
  client.on('closed', ({ code }) => closes.push(code))
  const threeRefreshes = new Promise<void>((resolve) => client.on('refreshed', () => { if (++refreshed === 3) resolve() }))
  await new Promise<void>((resolve) => client.on('open', () => resolve()))
  await backend.next('open', 'ivy')
  let up = 0
  let down = 0
  const pump = setInterval(() => {
    client.send(String(++up))
    backend.send({ action: 'send', user: 'ivy', data: String(++down) })
  }, 40) // 25 a second: under the rate limit (50/s)
  t.teardown(() => clearInterval(pump))
  await threeRefreshes
  clearInterval(pump)
  // a frame that is JSON (a number here) is its value in the event
  await backend.events.next((e) => e.event === 'message' && e.data === up, 15000, 'the last message sent')
  await eventually(async () => got.length, (n) => n >= down, 15000, `the client to receive all ${down} frames`)
  const messages = backend.events.all.filter((e) => e.event === 'message').map((e) => String(e.data))
  t.same(messages, Array.from({ length: up }, (_, i) => String(i + 1)), `all ${up} messages from the client reached the backend, in order`)
  t.same(got, Array.from({ length: down }, (_, i) => String(i + 1)), `all ${down} frames from the backend reached the client, in order`)
  t.same(closes, [], 'the client saw no close')
  for (const n of [1, 2, 3]) t.equal((await backend.next('refresh', 'ivy')).event, 'refresh', `the backend got refresh event ${n}`)
  t.equal(backend.events.all.filter((e) => e.event === 'close' || e.event === 'open').length, 1, 'one open, no close')
  t.equal(await gateway.metric('gatehouse_client_closes_total', { code: '4401' }), 0, 'nobody was closed with 4401')
})

/** `ws` whose refresh sockets report their open late, as on a loaded machine where the old socket's 4410 arrives first. */
const openAccessor = Object.getOwnPropertyDescriptor(NodeWebSocket.prototype, 'onopen') as PropertyDescriptor
class LateRefreshOpen extends NodeWebSocket {
  constructor (url: string | URL, protocols?: string | string[]) {
    super(url, protocols)
    if (!String(url).includes('refresh=1')) return
    Object.defineProperty(this, 'onopen', {
      set: (handler: ((event: unknown) => void) | null) => openAccessor.set?.call(this, handler === null ? null : (event: unknown) => { setTimeout(() => handler(event), 300) }),
      get: () => openAccessor.get?.call(this)
    })
  }
}

t.test('the client: the old socket\'s 4410 arriving before the new socket\'s open is still a refresh; sends meanwhile wait', async (t) => {
  const { backend, gateway } = await game(t, { refresh: true })
  const client = new GatehouseClient(gateway.url('/game/m1'), { token: () => tokenFor('joy'), refreshAheadMs: 0, WebSocket: LateRefreshOpen as unknown as typeof WebSocket })
  t.teardown(() => client.close())
  const closes: number[] = []
  client.on('closed', ({ code }) => closes.push(code))
  await new Promise<void>((resolve) => client.on('open', () => resolve()))
  await backend.next('open', 'joy')
  const refreshed = new Promise<void>((resolve) => client.on('refreshed', () => resolve()))
  client.refresh()
  await backend.next('refresh', 'joy')
  t.equal(client.send('sent in the gap'), true, 'a send after the old socket closed and before the new one opened is kept')
  await refreshed
  t.equal((await backend.next('message', 'joy')).data, 'sent in the gap', 'and goes out on the new socket')
  backend.send({ action: 'send', user: 'joy', data: 'to the new socket' })
  const got = await new Promise((resolve) => client.on('message', ({ data }) => resolve(String(data))))
  t.equal(got, 'to the new socket', 'frames reach the new socket')
  t.same(closes, [], 'the client saw no close')
  t.equal(client.state, 'open', 'and is open')
})
