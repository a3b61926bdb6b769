/**
 * A rolling deploy of a pool (docs/pools.md, "Rolling deploys with drain";
 * protocol/PROTOCOL.md §10) under traffic: a real gateway, 3 members that are
 * real SDK services with acks, real players streaming numbered messages that
 * their member echoes. Each member in turn is drained, its matches end (the
 * players go on to a new match) or move when it stops, it is stopped and a
 * new process started on its URL. Nobody may be disconnected, nothing lost
 * or echoed twice, and no match served by two processes at once.
 */
import t from 'tap'
import { once } from 'node:events'
import { WebSocketServer, type WebSocket } from 'ws'
import { pick } from '../src/pool/hrw.js'
import { GatehouseBackend } from '../src/sdk/index.js'
import { startGateway, testConfig, type TestGateway } from './helpers/gateway.js'
import { connect, refusal, type TestClient } from './helpers/client.js'
import { eventually } from './helpers/cluster.js'
import { signWith, tokenFor, unsignedToken } from './helpers/tokens.js'
import { Inbox } from './helpers/waiter.js'
import { BACKEND_TOKEN, captureLogger } from './sdk-fixtures.js'

const IDS = ['m0', 'm1', 'm2']
const LONG = 30000

function hrwOwner (key: string, ids: string[] = IDS): string {
  return (pick(key, ids.map((id) => ({ id, weight: 1 }))) as { id: string }).id
}

/** An open or close as one SDK process saw it. */
interface Seen {
  process: string
  member: string
  kind: 'open' | 'close'
  user: string
  key: string
}

/**
 * Who serves which key, per process: every open/close of every process, in
 * the order the handlers ran (one test process, so one timeline). An open of
 * a key while another process still has a client of it is a violation.
 */
class Ledger {
  readonly seen = new Inbox<Seen>()
  readonly violations: string[] = []
  private readonly live = new Map<string, Map<string, number>>()

  record (event: Seen): void {
    const mine = this.live.get(event.process)
    if (mine === undefined) return // a stopped process serves nobody
    if (event.kind === 'open') {
      for (const [other, keys] of this.live) {
        if (other !== event.process && (keys.get(event.key) ?? 0) > 0) this.violations.push(`${event.key} opened on ${event.process} while ${other} serves it`)
      }
      mine.set(event.key, (mine.get(event.key) ?? 0) + 1)
    } else {
      mine.set(event.key, (mine.get(event.key) ?? 0) - 1)
    }
    this.seen.push(event)
  }

  started (process: string): void {
    this.live.set(process, new Map())
  }

  stopped (process: string): void {
    this.live.delete(process)
  }

  /** The keys a process has clients of now. */
  keysOf (process: string): string[] {
    return [...(this.live.get(process) ?? new Map<string, number>())].filter(([, n]) => n > 0).map(([key]) => key)
  }
}

interface Instance {
  member: string
  process: string
  sdk: GatehouseBackend
  port: number
  drained: Inbox<string>
}

async function startMember (ledger: Ledger, member: string, generation: number, port = 0): Promise<Instance> {
  const process = `${member}#${generation}`
  const drained = new Inbox<string>()
  ledger.started(process)
  const sdk: GatehouseBackend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, {
    onOpen: (user, _claims, params) => ledger.record({ process, member, kind: 'open', user, key: params.matchId }),
    onMessage: (user, data) => { sdk.send(user, { echo: (data as { n: number }).n }) },
    onClose: (user, _code, _reason, { params }) => ledger.record({ process, member, kind: 'close', user, key: params.matchId }),
    onDrained: ({ endpoint }) => drained.push(endpoint)
  })
  const listening = await sdk.listen({ port })
  return { member, process, sdk, port: listening.port, drained }
}

async function stopMember (ledger: Ledger, instance: Instance): Promise<void> {
  await instance.sdk.stop()
  ledger.stopped(instance.process)
}

/** A player streaming `{n}` frames, 1, 2, 3... across every match it plays; each echo it gets is kept. */
class Player {
  readonly echoes = new Inbox<number>()
  sent = 0
  match = ''
  private socket?: { client: TestClient, left: boolean }

  constructor (readonly user: string, private readonly gateway: TestGateway, private readonly disconnects: string[]) {}

  async join (match: string): Promise<void> {
    const client = await connect(this.gateway.url(`/game/${match}`), { token: tokenFor(this.user) })
    const socket = { client, left: false }
    client.ws.on('message', (data: Buffer) => this.echoes.push((JSON.parse(data.toString()) as { echo: number }).echo))
    // a close the player did not ask for is a disconnect
    void client.closed.then(({ code, reason }) => { if (!socket.left) this.disconnects.push(`${this.user} in ${match}: ${code} ${reason}`) })
    this.socket = socket
    this.match = match
  }

  /** Stops sending, waits for the echo of everything sent, closes its socket. */
  async leave (): Promise<void> {
    const socket = this.socket
    if (socket === undefined) return
    this.socket = undefined
    await this.echoed(this.sent, `${this.user}'s echo of ${this.sent} before leaving ${this.match}`)
    socket.left = true
    socket.client.ws.close(1000)
    await socket.client.closed
  }

  /** Resolves once the echo of `n` (or a later one) has come. */
  async echoed (n: number, what: string): Promise<void> {
    if (n === 0 || this.echoes.all.some((e) => e >= n)) return
    await this.echoes.next((e) => e >= n, LONG, what)
  }

  tick (): void {
    if (this.socket?.client.ws.readyState === 1) this.socket.client.ws.send(JSON.stringify({ n: ++this.sent }))
  }
}

t.test('a rolling restart of all 3 members under traffic ends with 0 player disconnects and 0 lost messages', async (t) => {
  t.setTimeout(240000)
  const ledger = new Ledger()
  const generation: Record<string, number> = { m0: 1, m1: 1, m2: 1 }
  const current: Record<string, Instance> = {}
  for (const id of IDS) current[id] = await startMember(ledger, id, 1)
  t.teardown(async () => { await Promise.all(Object.values(current).map(async (i) => await i.sdk.stop().catch(() => {}))) })
  const gateway = await startGateway(t, testConfig([{
    name: 'game',
    path: '/game/:matchId',
    backend: {
      urls: IDS.map((id) => ({ id, url: `ws://127.0.0.1:${current[id].port}` })),
      route: 'params.matchId',
      token: BACKEND_TOKEN,
      acks: true,
      lingerMs: 150,
      failoverMs: 4000, // m2's restart in place must come back within it
      minReconnectDelayMs: 20,
      maxReconnectDelayMs: 200
    }
  }]))
  await eventually(async () => await gateway.metric('gatehouse_pool_member_state', { state: 'up' }), (n) => n === 3, LONG, 'every member up')

  // 3 matches on each member, 2 players each
  const matches: string[] = []
  for (const id of IDS) matches.push(...Array.from({ length: 40 }, (_, i) => `k${i}`).filter((k) => hrwOwner(k) === id).slice(0, 3))
  const disconnects: string[] = []
  const players: Player[] = []
  for (const match of matches) {
    for (const side of ['a', 'b']) {
      const p = new Player(`${match}${side}`, gateway, disconnects)
      await p.join(`${match}-0`)
      players.push(p)
    }
  }
  const opened = async (p: Player): Promise<Seen> => await ledger.seen.next((e) => e.kind === 'open' && e.user === p.user && e.key === p.match, LONG, `the open of ${p.user} in ${p.match}`)
  const firsts = await Promise.all(players.map(opened))
  t.same(new Set(firsts.map((e) => e.member)), new Set(IDS), 'the first matches are spread over the 3 members')

  const pump = setInterval(() => { for (const p of players) p.tick() }, 40)
  t.teardown(() => clearInterval(pump))
  const streamed = async (): Promise<void> => {
    const marks = players.map((p) => p.sent + 3)
    await Promise.all(players.map(async (p, i) => await p.echoed(marks[i], `${p.user} to stream on`)))
  }
  await streamed()

  let round = 0
  /** Both players of `key` leave it and start a new match together; it must not land on `draining`. */
  const nextMatch = async (key: string, draining: string): Promise<string> => {
    const pair = players.filter((p) => p.match === key)
    t.equal(pair.length, 2, `${key} has its 2 players`)
    await Promise.all(pair.map(async (p) => await p.leave()))
    const next = `${key.split('-')[0]}-${++round}`
    for (const p of pair) await p.join(next)
    const opens = await Promise.all(pair.map(opened))
    t.ok(opens.every((e) => e.member !== draining), `the new match ${next} lands off the draining ${draining}: on ${opens[0].member}`)
    return opens[0].member
  }

  // m0: every match ends, then it stops; m1: some end, the rest move when it stops (failover);
  // m2: some end, it restarts in place within failoverMs and the rest stay on it, then end there
  let movedOnShutdown = 0
  for (const id of IDS) {
    const old = current[id]
    const held = ledger.keysOf(old.process)
    t.ok(held.length >= 2, `${id} holds matches before its restart: ${held.join(', ')}`)
    old.sdk.drain()
    await eventually(async () => await gateway.metric('gatehouse_pool_member_state', { member: id, state: 'draining' }), (n) => n === 1, LONG, `${id} draining`)
    const ending = id === 'm0' ? held : held.slice(0, Math.ceil(held.length / 2))
    const staying = held.filter((k) => !ending.includes(k))
    const stayers = players.filter((p) => staying.includes(p.match))
    await Promise.all(ending.map(async (k) => await nextMatch(k, id)))
    await streamed()
    if (staying.length === 0) {
      t.equal(await old.drained.next(undefined, LONG, `drained on ${old.process}`), 'game', `${old.process} is told drained once its matches ended`)
    }
    await stopMember(ledger, old)
    if (id === 'm1') {
      // while it is away, a player with a bad token is refused and nobody else notices
      for (const [token, what] of [['not-a-jwt', 'garbage'], [unsignedToken('intruder'), 'alg none'], [signWith('another-secret-that-is-long-enough', 'HS256', { sub: 'intruder', exp: Math.floor(Date.now() / 1000) + 60 }), 'a foreign signature']] as const) {
        const refused = await refusal(gateway.url(`/game/${staying[0]}`), { token })
        t.equal(refused.status, 401, `${what} token during the restart: 401`)
        t.notOk(refused.opened, `${what}: no socket opened`)
      }
      await eventually(async () => await gateway.metric('gatehouse_pool_failovers_total', { member: id }), (n) => n === 1, LONG, `the failover of ${id}`)
      const reopened = await Promise.all(stayers.map(opened))
      t.ok(reopened.every((e) => e.member !== id), `${id}'s last matches moved to the others when it stopped: ${reopened.map((e) => `${e.key}@${e.member}`).join(', ')}`)
      t.equal(await gateway.metric('gatehouse_pool_member_state', { member: id, state: 'out' }), 1, `${id} is out`)
      movedOnShutdown += staying.length
    }
    const fresh = await startMember(ledger, id, ++generation[id], old.port)
    current[id] = fresh
    if (id === 'm1') {
      // the gateway keeps the drain of the member, not of the process: the new one holds nothing and is told so
      t.equal(await fresh.drained.next(undefined, LONG, `drained on ${fresh.process}`), 'game', `${fresh.process} is told drained: the drain outlives the process`)
    } else if (id === 'm2') {
      // back within failoverMs: its matches stayed, the new process learns their players from the sync
      const reopened = await Promise.all(stayers.map(opened))
      t.ok(reopened.every((e) => e.process === fresh.process), `${id}'s remaining matches stayed on it across the restart: ${staying.join(', ')}`)
      t.equal(await gateway.metric('gatehouse_pool_failovers_total', { member: id }), 0, `${id} came back in time: no failover`)
      await streamed()
      t.equal(fresh.drained.all.length, 0, `${fresh.process} is not drained while it holds matches`)
      await Promise.all(staying.map(async (k) => await nextMatch(k, id)))
      t.equal(await fresh.drained.next(undefined, LONG, `drained on ${fresh.process}`), 'game', `${fresh.process} is told drained once the matches it inherited ended`)
    } else {
      await once(fresh.sdk, 'synced')
    }
    fresh.sdk.undrain()
    await eventually(async () => await gateway.metric('gatehouse_pool_member_state', { member: id, state: 'up' }), (n) => n === 1, LONG, `${id} up again`)
    await streamed()
  }
  t.ok(movedOnShutdown >= 1, `some matches moved on a member's shutdown: ${movedOnShutdown}`)

  // the restarted members take new matches again
  const spread = new Set<string>()
  for (const key of [...new Set(players.map((p) => p.match))]) spread.add(await nextMatch(key, 'none'))
  t.same(spread, new Set(IDS), `after the restart, new matches reach every member: ${[...spread].join(', ')}`)
  await streamed()

  clearInterval(pump)
  await Promise.all(players.map(async (p) => await p.echoed(p.sent, `${p.user}'s last echo`)))
  t.same(disconnects, [], 'no player was disconnected at any time')
  for (const p of players) {
    t.same(p.echoes.all, Array.from({ length: p.sent }, (_, i) => i + 1), `${p.user}: each of its ${p.sent} messages echoed exactly once, in order`)
  }
  t.same(ledger.violations, [], 'no match was ever served by two processes at once')
  t.equal(await gateway.metric('gatehouse_pool_failovers_total'), 1, 'one failover, the member stopped with matches')
  t.equal(await gateway.metric('gatehouse_pool_failovers_total', { member: 'm1' }), 1, 'of m1')
  t.equal(await gateway.metric('gatehouse_pool_rehomed_clients_total'), 2 * movedOnShutdown, 'its players, and only they, re-homed')
  for (const id of IDS) t.equal(await gateway.metric('gatehouse_pool_member_state', { member: id, state: 'up' }), 1, `${id} ends up`)
  await eventually(async () => await gateway.metric('gatehouse_pool_member_keys', { endpoint: 'game' }), (n) => n === matches.length, LONG, 'ended matches released after lingerMs')
  t.equal(await gateway.metric('gatehouse_pool_member_clients', { endpoint: 'game' }), players.length, 'every player counted once')
  for (const p of players) await p.leave()
})

t.test('bad pool actions during a deploy: refused, counted, and nothing changes', async (t) => {
  const ledger = new Ledger()
  const good = await startMember(ledger, 'a', 1)
  t.teardown(async () => await good.sdk.stop())
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  t.teardown(async () => {
    for (const c of wss.clients) c.terminate()
    await new Promise((resolve) => wss.close(resolve))
  })
  const links = new Inbox<WebSocket>()
  const events = new Inbox<Record<string, unknown>>()
  wss.on('connection', (ws) => {
    links.push(ws)
    ws.on('message', (data) => { for (const e of [JSON.parse(data.toString())].flat()) events.push(e) })
  })
  const gateway = await startGateway(t, testConfig([{
    name: 'game',
    path: '/game/:matchId',
    backend: {
      urls: [{ id: 'a', url: `ws://127.0.0.1:${good.port}` }, { id: 'x', url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}` }],
      route: 'params.matchId',
      token: BACKEND_TOKEN,
      lingerMs: 0
    }
  }]))
  const raw = await links.next(undefined, LONG, 'the raw member\'s link')
  await eventually(async () => await gateway.metric('gatehouse_pool_member_state', { state: 'up' }), (n) => n === 2, LONG, 'both members up')
  const bad = [
    { action: 'drain', member: 'ghost' }, // a member the config does not have
    { action: 'drain', member: 'a' }, // draining another member
    { action: 'undrain', seq: 1 },
    { action: 'Drain' },
    '{"action":"drain"'
  ]
  for (const frame of bad) raw.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  await eventually(async () => await gateway.metric('gatehouse_backend_frame_errors_total', { endpoint: 'game' }), (n) => n >= bad.length, LONG, 'each bad action counted')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { endpoint: 'game' }), bad.length, 'each bad action counted once')
  t.equal(await gateway.metric('gatehouse_pool_member_state', { state: 'draining' }), 0, 'no member is draining')
  t.equal(await gateway.metric('gatehouse_pool_member_state', { state: 'up' }), 2, 'both members still up')

  // the raw member still takes new matches: its link never dropped
  const key = Array.from({ length: 40 }, (_, i) => `b${i}`).find((k) => hrwOwner(k, ['a', 'x']) === 'x') as string
  const p = await connect(gateway.url(`/game/${key}`), { token: tokenFor('p') })
  t.equal((await events.next((e) => e.event === 'open', LONG, 'the open on x')).user, 'p', 'a new match still reaches the member that sent garbage')
  t.equal(events.all.filter((e) => e.event === 'hello').length, 1, 'its link never dropped')
  const refused = await refusal(gateway.url(`/game/${key}`), { token: 'bad' })
  t.equal(refused.status, 401, 'a bad token beside it: 401')
  p.ws.send(JSON.stringify({ n: 1 }))
  t.same((await events.next((e) => e.event === 'message', LONG, 'the player\'s message')).data, { n: 1 }, 'the player carries on')

  // an operator who drains every member at once refuses nobody: new matches still go to one of them (by HRW),
  // even to one told `drained` already, which is then told again once that match has ended
  raw.send(JSON.stringify({ action: 'drain' }))
  good.sdk.drain()
  await eventually(async () => await gateway.metric('gatehouse_pool_member_state', { state: 'draining' }), (n) => n === 2, LONG, 'both members draining')
  t.equal(await good.drained.next(undefined, LONG, 'drained on a'), 'game', 'the member holding nothing is told drained')
  const lateKey = Array.from({ length: 40 }, (_, i) => `late${i}`).find((k) => hrwOwner(k, ['a', 'x']) === 'a') as string
  const late = await connect(gateway.url(`/game/${lateKey}`), { token: tokenFor('late') })
  t.equal((await ledger.seen.next((e) => e.kind === 'open' && e.user === 'late', LONG, 'the late open on a')).key, lateKey, 'with every member draining, a new match is still served')
  late.ws.close()
  await ledger.seen.next((e) => e.kind === 'close' && e.user === 'late', LONG, 'the late close on a')
  t.equal(await good.drained.next(undefined, LONG, 'drained on a again'), 'game', 'the drained member that got a match is told drained again once it ended')
  t.equal(events.all.filter((e) => e.event === 'drained').length, 0, 'x holds a match: not drained')
  p.ws.close()
})
