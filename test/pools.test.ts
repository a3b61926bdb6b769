/**
 * Backend pools (docs/pools.md, protocol/PROTOCOL.md §10) on one gateway:
 * real members (ws servers that ack like the SDK), a real gateway, real
 * players. Routing by match, failover of a killed member, drain, and the
 * bad input a pool must answer.
 */
import t from 'tap'
import { once } from 'node:events'
import { WebSocketServer, type WebSocket } from 'ws'
import { pick } from '../src/pool/hrw.js'
import { ConfigError, parseConfig } from '../src/index.js'
import { startGateway, testConfig, type TestGateway } from './helpers/gateway.js'
import { connect, refusal, type TestClient } from './helpers/client.js'
import { tokenFor } from './helpers/tokens.js'
import { Inbox } from './helpers/waiter.js'
import { GatehouseBackend } from '../src/sdk/index.js'
import { BACKEND_TOKEN, call, captureLogger, recorder } from './sdk-fixtures.js'

interface Received {
  event: string
  user?: string
  seq?: number
  params?: Record<string, string>
  data?: unknown
  users?: Array<{ user: string }>
  member?: string
  [key: string]: unknown
}

/**
 * One pool member: records every event, and acks what it received every
 * `ackEveryMs` (cumulative, as the SDK does) unless told to hold its acks.
 * `kill()` is a SIGKILL as the gateway sees it: every link cut without a
 * close frame, nothing listening on the port any more.
 */
class Member {
  readonly events = new Inbox<Received>()
  /** Each ack as it is sent. */
  readonly acks = new Inbox<number>()
  /** Another inbox that gets every event too, to await one from whichever member. */
  also?: Inbox<Received>
  /** Highest seq acked on the current link. */
  acked = 0
  holdAcks = false
  private received = 0
  private socket?: WebSocket
  private timer?: NodeJS.Timeout

  private constructor (private readonly wss: WebSocketServer, readonly port: number) {
    wss.on('connection', (socket) => {
      this.socket = socket
      this.received = 0
      this.acked = 0
      socket.on('message', (data) => {
        for (const event of [JSON.parse(data.toString()) as Received | Received[]].flat()) {
          if (event.event === 'sync' && typeof event.seq === 'number') this.received = this.acked = event.seq
          if (typeof event.seq === 'number' && event.event !== 'sync') this.received = event.seq
          this.events.push(event)
          this.also?.push(event)
        }
      })
    })
    this.timer = setInterval(() => this.ack(), 20)
  }

  static async start (port = 0): Promise<Member> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port })
    await once(wss, 'listening')
    return new Member(wss, (wss.address() as { port: number }).port)
  }

  get url (): string {
    return `ws://127.0.0.1:${this.port}`
  }

  ack (): void {
    if (this.holdAcks || this.received <= this.acked || this.socket?.readyState !== 1) return
    this.acked = this.received
    this.send({ action: 'ack', seq: this.acked })
    this.acks.push(this.acked)
  }

  send (frame: unknown): void {
    this.socket?.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  of (kind: string, user?: string): Received[] {
    return this.events.all.filter((e) => e.event === kind && (user === undefined || e.user === user))
  }

  async next (kind: string, user?: string, timeoutMs = 15000): Promise<Received> {
    return await this.events.next((e) => e.event === kind && (user === undefined || e.user === user), timeoutMs, `${kind}${user === undefined ? '' : ` of ${user}`} on :${this.port}`)
  }

  /** Cuts the links without a close frame and stops listening. */
  async kill (): Promise<void> {
    clearInterval(this.timer)
    for (const client of this.wss.clients) client.terminate()
    await new Promise<void>((resolve) => this.wss.close(() => resolve()))
  }

  /** Cuts the links without a close frame, still listening: the gateway redials at once. */
  cut (): void {
    for (const client of this.wss.clients) client.terminate()
  }
}

async function members (t: { teardown (fn: () => unknown): void }, n: number): Promise<Member[]> {
  const list = await Promise.all(Array.from({ length: n }, async () => await Member.start()))
  t.teardown(async () => { await Promise.all(list.map(async (m) => await m.kill().catch(() => {}))) })
  return list
}

function poolConfig (list: Member[], backend: Record<string, unknown> = {}, path = '/game/:matchId', overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return testConfig([{
    name: 'game',
    path,
    backend: {
      urls: list.map((m, i) => ({ id: `m${i}`, url: m.url })),
      route: 'params.matchId',
      minReconnectDelayMs: 20,
      maxReconnectDelayMs: 200,
      ...backend
    }
  }], overrides)
}

/** Which member (index) HRW gives `key` among `ids`. */
function hrwOwner (key: string, ids: string[]): string {
  return (pick(key, ids.map((id) => ({ id, weight: 1 }))) as { id: string }).id
}

async function allUp (gateway: TestGateway, n: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const body = JSON.parse((await gateway.get('/readyz')).body) as { members?: { game: Record<string, string> } }
    if (Object.values(body.members?.game ?? {}).filter((s) => s === 'up').length === n) return
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`not every member came up: ${(await gateway.get('/readyz')).body}`)
}

async function player (gateway: TestGateway, user: string, match: string): Promise<TestClient> {
  return await connect(gateway.url(`/game/${match}`), { token: tokenFor(user) })
}

t.test('3 members, 60 matches of 2 players: each match on the one member HRW picks, spread over all', async (t) => {
  const pool = await members(t, 3)
  const gateway = await startGateway(t, poolConfig(pool))
  await Promise.all(pool.map(async (m) => await m.next('hello')))
  await allUp(gateway, 3)
  const hello = pool[1].of('hello')[0]
  t.equal(hello.member, 'm1', 'hello names the member')
  const matches = Array.from({ length: 60 }, (_, i) => `match-${i}`)
  const clients = await Promise.all(matches.flatMap((m) => [player(gateway, `${m}-a`, m), player(gateway, `${m}-b`, m)]))
  await Promise.all(matches.flatMap((m) => {
    const owner = pool[Number(hrwOwner(m, ['m0', 'm1', 'm2']).slice(1))]
    return [owner.next('open', `${m}-a`), owner.next('open', `${m}-b`)]
  }))
  const homes = matches.map((m) => pool.filter((member) => member.of('open').some((e) => e.params?.matchId === m)).length)
  t.ok(homes.every((n) => n === 1), 'every match was opened on exactly one member')
  const perMember = pool.map((member) => new Set(member.of('open').map((e) => e.params?.matchId)).size)
  t.ok(perMember.every((n) => n > 0), `every member has matches: ${perMember.join(', ')}`)
  t.equal(perMember.reduce((a, b) => a + b, 0), 60, 'all 60 matches are placed')
  t.equal(await gateway.metric('gatehouse_pool_member_keys', { endpoint: 'game' }), 60, 'the keys gauge counts 60 keys')
  t.equal(await gateway.metric('gatehouse_pool_member_clients', { endpoint: 'game' }), 120, 'the clients gauge counts 120 clients')
  t.equal(await gateway.metric('gatehouse_pool_member_clients', { endpoint: 'game', member: 'm0' }), pool[0].of('open').length, 'per member')
  const ready = JSON.parse((await gateway.get('/readyz')).body)
  t.same(ready.members, { game: { m0: 'up', m1: 'up', m2: 'up' } }, 'readyz lists each member\'s state')

  // a message of each player reaches its match's member, and an action from there reaches the player
  const sample = clients[7]
  sample.ws.send(JSON.stringify({ move: 1 }))
  const owner = pool[Number(hrwOwner('match-3', ['m0', 'm1', 'm2']).slice(1))]
  t.same((await owner.next('message', 'match-3-b')).data, { move: 1 }, 'a player\'s message reaches its match\'s member')
  owner.send({ action: 'send', user: 'match-3-b', data: 'ok' })
  t.equal(await sample.next(), 'ok', 'the member\'s send reaches the player')
  for (const c of clients) c.ws.close()
})

t.test('a member killed under streaming players with acks: its matches move, nothing is lost or reordered, nobody is disconnected; back, it gets no live match but new ones', async (t) => {
  const pool = await members(t, 3)
  const ids = ['m0', 'm1', 'm2']
  const gateway = await startGateway(t, poolConfig(pool, { acks: true, failoverMs: 400 }))
  await Promise.all(pool.map(async (m) => await m.next('hello')))
  await allUp(gateway, 3)
  const matches = Array.from({ length: 20 }, (_, i) => `live-${i}`)
  const victim = pool[0]
  const doomed = matches.filter((m) => hrwOwner(m, ids) === 'm0')
  t.ok(doomed.length > 0, `the victim holds matches: ${doomed.length}`)
  const users = matches.flatMap((m) => [`${m}-a`, `${m}-b`])
  const clients = new Map<string, TestClient>()
  for (const user of users) clients.set(user, await player(gateway, user, user.slice(0, user.lastIndexOf('-'))))
  let disconnected = 0
  for (const c of clients.values()) void c.closed.then(() => { disconnected++ })
  await Promise.all(users.map(async (u) => await pool[Number(hrwOwner(u.slice(0, u.lastIndexOf('-')), ids).slice(1))].next('open', u)))

  const PER_PLAYER = 60
  const stream = async (user: string): Promise<void> => {
    const ws = (clients.get(user) as TestClient).ws
    for (let n = 1; n <= PER_PLAYER; n++) {
      ws.send(JSON.stringify({ n }))
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }
  const survivors = new Inbox<Received>()
  for (const m of pool.slice(1)) m.also = survivors
  const streaming = Promise.all(users.map(stream))
  // kill while the victim's players are mid-stream
  await victim.events.next((e) => e.event === 'message' && (e.data as { n: number }).n >= 10, 15000, 'the victim to get some messages')
  victim.holdAcks = true
  // the last ack is on the wire before the links are cut
  await new Promise((resolve) => setImmediate(resolve))
  const ackedAtKill = victim.acked
  await victim.kill()
  await streaming
  const processed = (member: Member, user: string, upToSeq = Infinity): number[] =>
    member.of('message', user).filter((e) => (e.seq ?? 0) <= upToSeq).map((e) => (e.data as { n: number }).n)
  // every player's last message reaches a survivor, unless the victim had it processed already
  await Promise.all(users.map(async (u) => {
    if (processed(victim, u, ackedAtKill).includes(PER_PLAYER)) return
    await survivors.next((e) => e.event === 'message' && e.user === u && (e.data as { n: number }).n === PER_PLAYER, 20000, `the last message of ${u}`)
  }))
  t.equal(disconnected, 0, 'no player was disconnected')
  t.equal(await gateway.metric('gatehouse_pool_failovers_total', { member: 'm0' }), 1, 'one failover of the victim, counted')
  t.equal(await gateway.metric('gatehouse_pool_rehomed_clients_total'), doomed.length * 2, 'its clients were re-homed, counted')
  t.equal(await gateway.metric('gatehouse_pool_member_state', { member: 'm0', state: 'out' }), 1, 'the victim is out')

  for (const user of users) {
    const match = user.slice(0, user.lastIndexOf('-'))
    const survivors = pool.slice(1).filter((m) => m.of('message', user).length > 0 || m.of('open', user).length > 0)
    t.equal(survivors.length, 1, `${user}: on exactly one survivor`)
    const heir = survivors[0]
    // what the victim acked is processed; everything after it must come, in order, from the heir
    const seen = doomed.includes(match) ? [...processed(victim, user, ackedAtKill), ...processed(heir, user)] : processed(heir, user)
    t.same(seen, Array.from({ length: PER_PLAYER }, (_, i) => i + 1), `${user}: every message once, in order`)
    if (doomed.includes(match)) t.equal(heir.of('open', user).length, 1, `${user}: re-opened once on its new member`)
  }

  // the victim comes back on its port: its sync is empty, no live match moves back, new matches reach it
  const back = await Member.start(victim.port)
  t.teardown(async () => await back.kill())
  await back.next('hello')
  t.same((await back.next('sync')).users, [], 'the member that came back is told of nobody: nothing is assigned to it now')
  await allUp(gateway, 3)
  const first = clients.get(users[0]) as TestClient
  first.ws.send(JSON.stringify({ n: PER_PLAYER + 1 }))
  const owner = pool.slice(1).find((m) => m.of('open', users[0]).length > 0) as Member
  await owner.events.next((e) => e.event === 'message' && e.user === users[0] && (e.data as { n: number }).n === PER_PLAYER + 1, 15000, 'the live match to stay where it is')
  t.equal(back.of('message').length + back.of('open').length, 0, 'no live match moved back')
  const fresh = Array.from({ length: 12 }, (_, i) => `fresh-${i}`)
  const newcomers = await Promise.all(fresh.map(async (m) => await player(gateway, `${m}-a`, m)))
  const members3 = [back, pool[1], pool[2]]
  await Promise.all(fresh.map(async (m) => await members3[Number(hrwOwner(m, ids).slice(1))].next('open', `${m}-a`)))
  t.ok(back.of('open').length > 0, `new matches reach the member that came back: ${back.of('open').length}`)
  t.equal(disconnected, 0, 'still nobody disconnected')
  for (const c of [...clients.values(), ...newcomers]) c.ws.close()
})

t.test('drain: no new match on the draining member, its live ones go on, then `drained`; a second drain changes nothing', async (t) => {
  const pool = await members(t, 3)
  const ids = ['m0', 'm1', 'm2']
  const gateway = await startGateway(t, poolConfig(pool, { lingerMs: 0 }))
  await Promise.all(pool.map(async (m) => await m.next('hello')))
  await allUp(gateway, 3)
  const live = Array.from({ length: 9 }, (_, i) => `old-${i}`).filter((m) => hrwOwner(m, ids) === 'm0')
  t.ok(live.length > 0, 'm0 has live matches')
  const players = await Promise.all(live.map(async (m) => await player(gateway, `${m}-a`, m)))
  await Promise.all(live.map(async (m) => await pool[0].next('open', `${m}-a`)))
  pool[0].send({ action: 'drain' })
  pool[0].send({ action: 'drain' })
  await gateway.logged(/pool member draining/)
  await gateway.logged(/pool member draining/)
  t.equal(await gateway.metric('gatehouse_pool_member_state', { member: 'm0', state: 'draining' }), 1, 'm0 is draining')

  const fresh = Array.from({ length: 30 }, (_, i) => `new-${i}`)
  const newcomers = await Promise.all(fresh.map(async (m) => await player(gateway, `${m}-a`, m)))
  const rest = [pool[1], pool[2]]
  await Promise.all(fresh.map(async (m) => await rest[Number(hrwOwner(m, ['m1', 'm2']).slice(1)) - 1].next('open', `${m}-a`)))
  t.ok(fresh.some((m) => hrwOwner(m, ids) === 'm0'), 'some new matches would have gone to m0')
  t.equal(pool[0].of('open').length, live.length, 'no new match reached the draining member')

  players[0].ws.send(JSON.stringify({ still: 'here' }))
  t.same((await pool[0].next('message', `${live[0]}-a`)).data, { still: 'here' }, 'its live matches go on')
  t.equal(pool[0].of('drained').length, 0, 'not drained while it holds matches')
  for (const p of players) p.ws.close()
  await pool[0].next('drained')
  const events = pool[0].events.all.map((e) => e.event)
  t.equal(events.lastIndexOf('close') < events.indexOf('drained'), true, '`drained` comes after the last close')
  t.equal(pool[0].of('drained').length, 1, 'drained once, though drain was sent twice')

  pool[0].send({ action: 'undrain' })
  await gateway.logged(/undrained/)
  const again = Array.from({ length: 9 }, (_, i) => `again-${i}`).filter((m) => hrwOwner(m, ids) === 'm0')
  const back = await Promise.all(again.map(async (m) => await player(gateway, `${m}-a`, m)))
  await Promise.all(again.map(async (m) => await pool[0].next('open', `${m}-a`)))
  t.pass('undrained, it gets new matches again')
  for (const c of [...newcomers, ...back]) c.ws.close()
})

t.test('SDK: drain() reaches every gateway, onDrained once its last match has ended, undrain() takes it back', async (t) => {
  const { handlers, calls } = recorder()
  const sdk = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, handlers)
  const { url } = await sdk.listen()
  t.teardown(async () => await sdk.stop())
  const [other] = await members(t, 1)
  const ids = ['sdk', 'other']
  const config = testConfig([{
    name: 'game',
    path: '/game/:matchId',
    backend: { urls: [{ id: 'sdk', url }, { id: 'other', url: other.url }], route: 'params.matchId', token: BACKEND_TOKEN, acks: true, lingerMs: 0 }
  }])
  const gateway = await startGateway(t, config)
  await other.next('hello')
  await allUp(gateway, 2)
  const match = Array.from({ length: 50 }, (_, i) => `s-${i}`).find((m) => hrwOwner(m, ids) === 'sdk') as string
  const p = await player(gateway, 'p', match)
  await call(calls, 'open p')
  sdk.drain()
  await gateway.logged(/pool member draining/)
  p.ws.close()
  await call(calls, 'close p')
  t.match(await call(calls, 'drained'), /^drained \S+ game$/, 'onDrained names the gateway and the endpoint')
  sdk.undrain()
  await gateway.logged(/undrained/)
  const q = await player(gateway, 'q', match)
  t.equal(await call(calls, 'open q'), `open q {"matchId":"${match}"}`, 'undrained, the service gets new matches again')
  q.ws.close()
})

t.test('a player moving to a match on another member: its close there is committed before its open here', async (t) => {
  const pool = await members(t, 2)
  const ids = ['m0', 'm1']
  const gateway = await startGateway(t, poolConfig(pool, { acks: true }))
  await Promise.all(pool.map(async (m) => await m.next('hello')))
  await allUp(gateway, 2)
  const on = (id: string): string => Array.from({ length: 50 }, (_, i) => `x-${i}`).find((m) => hrwOwner(m, ids) === id) as string
  const [from, to] = [on('m0'), on('m1')]
  const witness = await player(gateway, 'w', to)
  await pool[1].next('open', 'w')
  await player(gateway, 'u', from)
  await pool[0].next('open', 'u')
  pool[0].holdAcks = true
  const moved = await player(gateway, 'u', to)
  await pool[0].next('close', 'u')
  // the witness's message is written after u's open would have been
  witness.ws.send(JSON.stringify({ after: 'move' }))
  await pool[1].next('message', 'w')
  t.equal(pool[1].of('open', 'u').length, 0, 'no open on the new member while the close on the old one is unacknowledged')
  moved.ws.send(JSON.stringify({ first: true }))
  pool[0].holdAcks = false
  pool[0].ack()
  await pool[1].next('open', 'u')
  t.same((await pool[1].next('message', 'u')).data, { first: true }, 'once the close is acked, the open and then the held message follow')
  witness.ws.close()
  moved.ws.close()
})

t.test('bad input: a moving player flooding while its old close is unacknowledged is held to queue.maxClientBytes and closed (1008)', async (t) => {
  const pool = await members(t, 2)
  const ids = ['m0', 'm1']
  const gateway = await startGateway(t, poolConfig(pool, { acks: true }, '/game/:matchId', { queue: { maxClientBytes: 4096 } }))
  await Promise.all(pool.map(async (m) => await m.next('hello')))
  await allUp(gateway, 2)
  const on = (id: string): string => Array.from({ length: 50 }, (_, i) => `y-${i}`).find((m) => hrwOwner(m, ids) === id) as string
  const [from, to] = [on('m0'), on('m1')]
  await player(gateway, 'f', from)
  await pool[0].next('open', 'f')
  pool[0].holdAcks = true
  const moved = await player(gateway, 'f', to)
  await pool[0].next('close', 'f')
  // each waits behind the unacknowledged close: without a bound they would pile up for as long as the old member takes
  for (let i = 0; i < 10; i++) moved.ws.send('x'.repeat(1000))
  t.same(await moved.closed, { code: 1008, reason: 'too much queued for the backend, slow down' }, 'the flooder is closed as over its share')
  t.ok(await gateway.metric('gatehouse_dropped_events_total', { reason: 'client_share' }) >= 1, 'the refused message is counted')
  pool[0].holdAcks = false
  pool[0].ack()
})

t.test('a member whose link flaps faster than failoverMs keeps its matches: no failover', async (t) => {
  const pool = await members(t, 2)
  const ids = ['m0', 'm1']
  const gateway = await startGateway(t, poolConfig(pool, { acks: true, failoverMs: 5000 }))
  await Promise.all(pool.map(async (m) => await m.next('hello')))
  await allUp(gateway, 2)
  const match = Array.from({ length: 50 }, (_, i) => `f-${i}`).find((m) => hrwOwner(m, ids) === 'm0') as string
  await pool[0].next('sync')
  const p = await player(gateway, 'p', match)
  const { seq } = await pool[0].next('open', 'p')
  // acked, the open is in every later sync
  await pool[0].acks.next((n) => n >= (seq as number), 15000, 'the open to be acked')
  for (let i = 1; i <= 4; i++) {
    pool[0].cut()
    p.ws.send(JSON.stringify({ i }))
    await pool[0].next('hello')
    const sync = await pool[0].next('sync')
    t.same(sync.users?.map((u) => u.user), ['p'], `flap ${i}: the member's sync still lists its player`)
    await pool[0].events.next((e) => e.event === 'message' && (e.data as { i: number }).i === i, 15000, `message ${i}`)
  }
  t.equal(await gateway.metric('gatehouse_pool_failovers_total'), 0, 'no failover')
  t.equal(pool[1].of('open').length, 0, 'the other member never got the match')
  p.ws.close()
})

t.test('garbage from a member is counted, and its link and matches carry on', async (t) => {
  const pool = await members(t, 2)
  const gateway = await startGateway(t, poolConfig(pool))
  await Promise.all(pool.map(async (m) => await m.next('hello')))
  await allUp(gateway, 2)
  const match = Array.from({ length: 50 }, (_, i) => `g-${i}`).find((m) => hrwOwner(m, ['m0', 'm1']) === 'm0') as string
  const p = await player(gateway, 'p', match)
  await pool[0].next('open', 'p')
  pool[0].send('not json')
  pool[0].send({ action: 'drain', please: true })
  pool[0].send({ action: 'undrain', member: 'm1' })
  pool[0].send([{ action: 'bogus' }, { action: 'send', user: 'p', data: 'still here' }])
  t.equal(await p.next(), 'still here', 'the valid action of a bad batch is carried out')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { endpoint: 'game' }), 4, 'each bad frame or action is counted')
  t.equal(await gateway.metric('gatehouse_pool_member_state', { member: 'm0', state: 'up' }), 1, 'a drain with extra fields was refused: m0 is not draining')
  p.ws.send('"move"')
  await pool[0].next('message', 'p')
  t.equal(pool[0].of('hello').length, 1, 'the link never dropped')
  p.ws.close()
})

t.test('a client without a routing key is refused before the upgrade (400)', async (t) => {
  const pool = await members(t, 2)
  const config = testConfig([{ name: 'game', path: '/game', backend: { urls: pool.map((m) => m.url), route: 'claims.team' } }])
  const gateway = await startGateway(t, config)
  await Promise.all(pool.map(async (m) => await m.next('hello')))
  for (const [claims, what] of [[{}, 'no team claim'], [{ team: '' }, 'an empty team claim'], [{ team: { id: 1 } }, 'an object as team claim']] as const) {
    const refused = await refusal(gateway.url('/game'), { token: tokenFor('u', claims) })
    t.equal(refused.status, 400, `${what}: HTTP 400`)
    t.equal(JSON.parse(refused.body).code, 'GW_ERR_NO_ROUTING_KEY', `${what}: named GW_ERR_NO_ROUTING_KEY`)
    t.notOk(refused.opened, 'no WebSocket opened')
  }
  t.equal(await gateway.metric('gatehouse_handshake_failures_total', { reason: 'no_routing_key' }), 3, 'each refusal is counted')
  const ok = await connect(gateway.url('/game'), { token: tokenFor('u', { team: 'red' }) })
  // a member given as a bare URL is named by it: ws://127.0.0.1:PORT/
  const owner = pool.find((m) => hrwOwner('red', pool.map((p) => `${p.url}/`)) === `${m.url}/`) as Member
  const open = await owner.next('open', 'u')
  t.equal((open.claims as Record<string, unknown>).team, 'red', 'a client with the claim is routed by it, to the member HRW picks')
  t.equal(owner.of('hello')[0].member, `${owner.url}/`, 'a member given as a bare URL is named by it')
  ok.ws.close()
})

t.test('bad pool config: each problem named by its field', async (t) => {
  const base = { auth: { secret: 's' } }
  const problems = (backend: Record<string, unknown>, path = '/game/:matchId'): string[] => {
    try {
      parseConfig({ ...base, endpoints: [{ name: 'game', path, backend }] })
      return []
    } catch (err) {
      return (err as ConfigError).problems
    }
  }
  t.same(problems({ url: 'ws://a:1', urls: ['ws://b:1'] }), ['endpoints[0].backend: must have exactly one of url, urls'], 'url and urls together')
  t.same(problems({}), ['endpoints[0].backend: must have exactly one of url, urls'], 'neither url nor urls')
  t.same(problems({ urls: [] }), ['endpoints[0].backend.urls: must NOT have fewer than 1 items'], 'an empty urls')
  t.same(problems({ urls: ['ws://a:1', 'ws://a:1'] }), ['endpoints[0].backend.urls[1]: ws://a:1 is already endpoints[0].backend.urls[0]'], 'a duplicate URL')
  t.same(problems({ urls: [{ id: 'x', url: 'ws://a:1' }, { id: 'x', url: 'ws://b:1' }] }), ['endpoints[0].backend.urls[1]: member id "x" is already used by endpoints[0].backend.urls[0]'], 'a duplicate id')
  t.same(problems({ urls: [{ id: 'x', url: 'ws://a:1', weight: 0 }] }), ['endpoints[0].backend.urls[0].weight: must be > 0'], 'weight 0')
  t.same(problems({ urls: [{ id: 'x', url: 'http://a:1' }, 'ftp://b'] }), [
    'endpoints[0].backend.urls[0].url: must match pattern "^wss?://"',
    'endpoints[0].backend.urls[1]: must match pattern "^wss?://"'
  ], 'a bad URL, in either form')
  t.same(problems({ urls: [{ url: 'ws://a:1', colour: 'red' }] }), [
    'endpoints[0].backend.urls[0].id: is required',
    'endpoints[0].backend.urls[0].colour: is not a known field'
  ], 'the full form needs an id and knows its fields')
  t.same(problems({ urls: ['ws://a:1'], route: 'params.gameId' }), ['endpoints[0].backend.route: routes by the path parameter "gameId", but the path "/game/:matchId" has no :gameId'], 'route names a param the path lacks')
  t.same(problems({ urls: ['ws://a:1'], route: 'match' }), ['endpoints[0].backend.route: must match pattern "^(user|params\\.[^.]+|claims\\..+)$"'], 'route of another form')
  t.same(problems({ urls: ['ws://a:1#frag'] }), ['endpoints[0].backend.urls[0]: must not have a #fragment'], 'a #fragment')
  const clustered = parseConfig({ ...base, cluster: { redis: 'redis://127.0.0.1:6379' }, endpoints: [{ name: 'game', path: '/game', backend: { urls: ['ws://a:1', 'ws://b:1'] } }] })
  t.equal(clustered.endpoints[0].backend.urls?.length, 2, 'a pool of several members in a cluster is taken (docs/pools.md, "Clusters")')
  const config = parseConfig({ ...base, endpoints: [{ name: 'game', path: '/game/:matchId', backend: { urls: ['ws://user:pw@a:1/x?token=t', { id: 'b', url: 'ws://b:1' }], route: 'params.matchId' } }] })
  t.same(config.endpoints[0].backend.urls, ['ws://user:pw@a:1/x?token=t', { id: 'b', url: 'ws://b:1', weight: 1 }], 'valid: weight defaults to 1')
  t.equal(config.endpoints[0].backend.failoverMs, 5000, 'failoverMs defaults to 5000')
  t.equal(config.endpoints[0].backend.lingerMs, 30000, 'lingerMs defaults to 30000')
})

t.test('a refresh that changes the claim `route` names keeps the client on its key, a failover included: its open and its messages reach one heir', async (t) => {
  const pool = await members(t, 3)
  const ids = ['m0', 'm1', 'm2']
  const heirs = ['m1', 'm2']
  // shard `a` on m0, the member that dies; shard `b` whose heir among the others is not a's
  const shards = Array.from({ length: 200 }, (_, i) => `s${i}`)
  const a = shards.find((s) => hrwOwner(s, ids) === 'm0') as string
  const b = shards.find((s) => hrwOwner(s, heirs) !== hrwOwner(a, heirs)) as string
  const heir = pool[Number(hrwOwner(a, heirs).slice(1))]
  const other = pool[Number(hrwOwner(b, heirs).slice(1))]
  const gateway = await startGateway(t, poolConfig(pool, { route: 'claims.shard', acks: true, failoverMs: 300 }, '/game'))
  await Promise.all(pool.map(async (m) => await m.next('hello')))
  await allUp(gateway, 3)
  const first = await connect(gateway.url('/game'), { token: tokenFor('rita', { shard: a }) })
  await pool[0].next('open', 'rita')
  const refreshed = await connect(gateway.url('/game?refresh=1'), { token: tokenFor('rita', { shard: b }) })
  t.equal((await first.closed).code, 4410, 'the old socket ends as refreshed')
  refreshed.ws.send(JSON.stringify({ n: 1 }))
  await pool[0].events.next((e) => e.event === 'message' && e.user === 'rita', 15000, 'the message on the member of the key she opened with')
  await pool[0].kill()
  await heir.next('open', 'rita', 20000)
  refreshed.ws.send(JSON.stringify({ n: 2 }))
  const message = await heir.events.next((e) => e.event === 'message' && e.user === 'rita' && (e.data as { n: number }).n === 2, 15000, 'her next message on the heir of her key')
  t.equal(message.user, 'rita', 'the heir of the key she opened with gets her open and her messages')
  t.equal(other.of('open', 'rita').length + other.of('message', 'rita').length, 0, 'the heir of the refreshed claim\'s key gets nothing of her')
  t.equal(refreshed.ws.readyState, refreshed.ws.OPEN, 'she stays connected')
  // bad input: a refresh token for another user is that user's own connection, not rita's
  const stranger = await connect(gateway.url('/game?refresh=1'), { token: tokenFor('sam', { shard: a }) })
  await heir.next('open', 'sam')
  t.equal(refreshed.ws.readyState, refreshed.ws.OPEN, 'another user\'s refresh leaves her socket alone')
  stranger.ws.close()
  refreshed.ws.close()
})
