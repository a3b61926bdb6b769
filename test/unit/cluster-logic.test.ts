/**
 * The cluster's logic (src/cluster/cluster-broker.ts, forwarder.ts) with
 * three nodes in this process, on the in-memory transport: what the
 * real-Redis tests cannot stage on cue (a hand-off that times out, a conflict
 * found after an outage, a node reaped while cut off, an abandoned handshake).
 */
import t from 'tap'
import { pino } from 'pino'
import type { ClientAction, Params } from '../../protocol/index.js'
import type { EndpointConfig } from '../../src/config/schema.js'
import type { Connection, DuplicatePolicy, Eviction } from '../../src/domain.js'
import { GatewayMetrics } from '../../src/metrics.js'
import { Admissions } from '../../src/cluster/admission.js'
import type { LocalNode } from '../../src/cluster/broker.js'
import { ClusterBroker } from '../../src/cluster/cluster-broker.js'
import { MemoryHub, type MemoryTransport } from '../../src/cluster/memory-transport.js'
import { Inbox } from '../helpers/waiter.js'
import { eventually } from '../helpers/cluster.js'

type Call =
  | { kind: 'evict', user: string, id: string, why: Eviction, params?: Params }
  | { kind: 'reportLost', user: string, params: Params }
  | { kind: 'reopen', user: string, id: string }
  | { kind: 'deliver', actions: ClientAction[] }

/** A node's endpoints as the broker sees them: the connections held, and every call the broker made (also in the cluster's `heard`). */
class FakeNode implements LocalNode {
  readonly held = new Map<string, Connection>()
  readonly calls = new Inbox<Call>()

  constructor (private readonly id: string, private readonly heard: Inbox<{ node: string, call: Call }>) {}

  /** Set to make the next evictions fail, as a bug in the endpoint would. */
  failEvict = false

  async evict (_endpoint: string, user: string, id: string, why: Eviction, params?: Params): Promise<void> {
    if (this.held.get(user)?.id === id) this.held.delete(user)
    this.record({ kind: 'evict', user, id, why, ...(params === undefined ? {} : { params }) })
    if (this.failEvict) throw new Error('evict failed')
  }

  async reportLost (_endpoint: string, user: string, params: Params): Promise<void> {
    this.record({ kind: 'reportLost', user, params })
  }

  reopen (_endpoint: string, user: string, id: string): void {
    this.record({ kind: 'reopen', user, id })
  }

  deliver (_endpoint: string, actions: ClientAction[]): void {
    this.record({ kind: 'deliver', actions })
  }

  connections (): Iterable<Connection> {
    return this.held.values()
  }

  private record (call: Call): void {
    this.calls.push(call)
    this.heard.push({ node: this.id, call })
  }
}

interface Node { id: string, broker: ClusterBroker, transport: MemoryTransport, local: FakeNode, metrics: GatewayMetrics, warnings: string[] }

/** Three nodes a, b, c on one hub, joined. */
async function cluster (t: { equal: (a: unknown, b: unknown, m: string) => void, teardown: (fn: () => unknown) => void }, timing: { presenceTtlMs: number, handoffTimeoutMs: number }): Promise<{ hub: MemoryHub, heard: Inbox<{ node: string, call: Call }>, a: Node, b: Node, c: Node }> {
  const hub = new MemoryHub()
  const heard = new Inbox<{ node: string, call: Call }>()
  const start = async (id: string): Promise<Node> => {
    const metrics = new GatewayMetrics()
    const warnings: string[] = []
    const log = pino({ level: 'warn' }, { write: (line: string) => { warnings.push((JSON.parse(line) as { msg: string }).msg) } })
    const transport = hub.transport(id, timing.presenceTtlMs)
    const broker = new ClusterBroker(transport, { name: 'test', nodeId: id, ...timing, metrics, log })
    const local = new FakeNode(id, heard)
    await broker.start(local, 10_000)
    t.teardown(async () => await broker.close())
    return { id, broker, transport, local, metrics, warnings }
  }
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(start))
  t.equal([a, b, c].every((n) => n.broker.state === 'up'), true, 'all three nodes joined')
  return { hub, heard, a, b, c }
}

let issued = 0
function connection (node: Node, user: string, policy: DuplicatePolicy, since = Date.now()): Connection {
  return { endpoint: 'lobby', user, id: `${node.id}#${++issued}`, params: { room: user }, since, policy }
}

/** Claims `user` on `node`, which then holds the connection. */
async function hold (node: Node, user: string, policy: DuplicatePolicy, since?: number): Promise<Connection> {
  const held = connection(node, user, policy, since)
  const claim = await node.broker.claim(held)
  if (claim.outcome !== 'free') throw new Error(`claim of ${user} on ${node.id}: ${claim.outcome}`)
  node.local.held.set(user, held)
  return held
}

async function claims (node: Node, outcome: string): Promise<number> {
  const metric = await node.metrics.clusterClaims.get()
  return metric.values.find((v) => v.labels.outcome === outcome)?.value ?? 0
}

const send = (user: string, data: string): ClientAction => ({ action: 'send', user, data })

t.test('a replace hands off to the node holding the user; forwards reach the holder, `all` every other node', async (t) => {
  const { a, b, c } = await cluster(t, { presenceTtlMs: 5000, handoffTimeoutMs: 5000 })
  const old = await hold(a, 'alice', 'replace')
  t.same(await b.broker.claim(connection(b, 'alice', 'replace')), { outcome: 'handedOff' }, 'b\'s claim waited for a\'s answer')
  t.same(a.local.calls.all, [{ kind: 'evict', user: 'alice', id: old.id, why: 'replaced' }], 'a was asked to close its connection, before b\'s claim returned')

  await hold(c, 'carol', 'replace')
  a.broker.forward('lobby', [send('carol', 'to carol'), { action: 'send', all: true, data: 'to all' }])
  t.same(await c.local.calls.next((call) => call.kind === 'deliver', 10_000, 'the forward'), { kind: 'deliver', actions: [{ action: 'send', users: ['carol'], data: 'to carol' }] }, 'c got the action for its user, readdressed')
  t.same(await c.local.calls.next((call) => call.kind === 'deliver', 10_000, 'the `all`'), { kind: 'deliver', actions: [{ action: 'send', all: true, data: 'to all' }] }, 'then the `all`, in order')
  t.same(await b.local.calls.next((call) => call.kind === 'deliver', 10_000, 'the `all`'), { kind: 'deliver', actions: [{ action: 'send', all: true, data: 'to all' }] }, 'b got the `all` too')
  t.equal(a.local.calls.all.filter((call) => call.kind === 'deliver').length, 0, 'a does not hear its own `all` back')
})

t.test('hand-off timeout: the node holding the user never answers; the claim goes ahead and reports the old close here', async (t) => {
  const { hub, a, b } = await cluster(t, { presenceTtlMs: 10_000, handoffTimeoutMs: 300 })
  await hold(a, 'alice', 'replace')
  // a keeps its lease (it expires in 10 s) but hears nothing: the evict is published to nobody
  hub.cut('a')
  const claim = await b.broker.claim(connection(b, 'alice', 'replace'))
  t.same(claim, { outcome: 'handedOff', lost: { params: { room: 'alice' } } }, 'handed off, with the old connection\'s params to report its close on b')
  t.equal(await claims(b, 'handoff_timeout'), 1, 'counted as a hand-off timeout')
  t.ok(b.warnings.includes('replace: the node holding the old connection did not answer; reporting its close here'), 'and logged')
  t.equal(a.local.calls.all.length, 0, 'a was never reached')
})

t.test('REASSERT after an outage: `replace` keeps the newer connection, `reject` the older', async (t) => {
  for (const policy of ['replace', 'reject'] as const) {
    await t.test(policy, async (t) => {
      const { hub, a, b } = await cluster(t, { presenceTtlMs: 10_000, handoffTimeoutMs: 5000 })
      const older = await hold(a, 'alice', policy, 1000)
      hub.cut('a')
      hub.cut('b')
      t.equal(b.broker.state, 'down', 'b lost the hub')
      t.same(await b.broker.claim(connection(b, 'alice', policy)), { outcome: 'unchecked' }, 'b could not check alice while the hub was away')
      const newer = connection(b, 'alice', policy, 2000)
      b.local.held.set('alice', newer)
      hub.restore('a')
      await new Promise<void>((resolve) => a.broker.once('state', () => resolve()))
      hub.restore('b')
      const [loser, winner, id, why] = policy === 'replace' ? [a, b, older.id, 'replaced'] : [b, a, newer.id, 'rejected']
      t.same(await loser.local.calls.next((call) => call.kind === 'evict', 10_000, 'the eviction'), { kind: 'evict', user: 'alice', id, why }, `${loser.id} closes its connection (${why})`)
      t.equal(winner.local.calls.all.filter((call) => call.kind === 'evict').length, 0, `${winner.id} keeps its connection`)
      t.same(hub.presence.get('lobby:alice')?.n, winner.id, `presence names ${winner.id}`)
    })
  }
})

t.test('a node reaped while cut off comes back: it announces its users again, and forwards reach them', async (t) => {
  const { hub, heard, a, c } = await cluster(t, { presenceTtlMs: 600, handoffTimeoutMs: 5000 })
  // admitted before the cut (a connection admitted during it was never reported closed)
  const alice = await hold(a, 'alice', 'replace', Date.now() - 1000)
  hub.cut('a')
  // a's lease expires; b or c reaps it and reports alice closed (1006)
  const reap = await heard.next(({ call }) => call.kind === 'reportLost', 10_000, 'the reap')
  t.same(reap.call, { kind: 'reportLost', user: 'alice', params: { room: 'alice' } }, `${reap.node} reported alice closed`)
  hub.restore('a')
  await new Promise<void>((resolve) => a.broker.once('state', () => resolve()))
  t.same(a.local.calls.all.filter((call) => call.kind === 'reopen'), [{ kind: 'reopen', user: 'alice', id: alice.id }], 'a, joined again, has announced alice again')
  t.ok(a.warnings.includes('this node was reaped while cut off from redis; its users were announced again'), 'and says why')
  t.same(hub.presence.get('lobby:alice'), { n: 'a', c: alice.id, s: alice.since }, 'presence names a\'s connection again')
  c.broker.forward('lobby', [send('alice', 'welcome back')])
  t.same(await a.local.calls.next((call) => call.kind === 'deliver', 10_000, 'the forward'), { kind: 'deliver', actions: [{ action: 'send', users: ['alice'], data: 'welcome back' }] }, 'a forward for alice reaches a')
})

t.test('an abandoned handshake gives its claim back: the user is free again, or held again by this node\'s live connection', async (t) => {
  const { hub, a, b } = await cluster(t, { presenceTtlMs: 10_000, handoffTimeoutMs: 5000 })
  // a spy on a's store: the release is fire-and-forget, so the test hears when it is done
  const released = new Inbox<string>()
  const store = a.transport.presence
  const release = store.release.bind(store)
  store.release = async (field, id, holder) => {
    await release(field, id, holder)
    released.push(field)
  }
  const endpoint = { name: 'lobby', duplicate: 'reject' } as EndpointConfig
  const admissions = new Admissions(a.broker, 'a', 'accept')
  const ticket = await admissions.claim(endpoint, { user: 'alice', claims: {} }, {})
  t.same(hub.presence.get('lobby:alice')?.c, ticket.connection.id, 'the handshake\'s claim is registered')
  admissions.release(ticket)
  await released.next(() => true, 10_000, 'the release')
  t.equal(hub.presence.has('lobby:alice'), false, 'and gone once given back')
  t.same(await b.broker.claim(connection(b, 'bob', 'reject')), { outcome: 'free' }, 'another user is unaffected')

  const live = await hold(a, 'carol', 'replace')
  const second = await admissions.claim({ name: 'lobby', duplicate: 'replace' } as EndpointConfig, { user: 'carol', claims: {} }, {})
  t.same(hub.presence.get('lobby:carol')?.c, second.connection.id, 'a second handshake of carol claimed her over the live connection')
  admissions.release(second, live)
  await released.next(() => true, 10_000, 'the release')
  t.same(hub.presence.get('lobby:carol'), { n: 'a', c: live.id, s: live.since }, 'given back, the live connection holds carol again')
  t.same(await b.broker.claim(connection(b, 'carol', 'reject')), { outcome: 'refused' }, 'so b refuses carol under reject')
})

t.test('bad input: the transport drops and returns while a join runs; the node joins again and listens on its channels', async (t) => {
  const hub = new MemoryHub()
  const transport = hub.transport('A', 3000)
  const subscribe = transport.bus.subscribe.bind(transport.bus)
  let subscribes = 0
  transport.bus.subscribe = async (channels) => {
    await subscribe(channels)
    // a blip right after the first SUBSCRIBE, while that join still runs: the subscription dies with it
    if (subscribes++ === 0) {
      hub.cut('A')
      hub.restore('A')
    }
  }
  const broker = new ClusterBroker(transport, { name: 'c', nodeId: 'A', presenceTtlMs: 3000, handoffTimeoutMs: 500, metrics: new GatewayMetrics(), log: pino({ level: 'silent' }) })
  t.teardown(async () => await broker.close())
  const local = new FakeNode('A', new Inbox())
  await broker.start(local, 1000)
  const settled = await eventually(async () => ({ state: broker.state, listening: transport.listensTo('node:A'), subscribes }),
    (now) => now.state === 'up' && now.listening, 5000, 'the node up and listening')
  t.equal(settled.state, 'up', 'the node is up')
  t.ok(settled.listening, 'and subscribed to its own channel again')
  t.equal(settled.subscribes, 2, 'by a second join after the one the blip cut short')
})

t.test('bad input: a hand-off request on the bus with params that are not an object, and an eviction that fails: no crash, counted', async (t) => {
  const { a, b } = await cluster(t, { presenceTtlMs: 3000, handoffTimeoutMs: 500 })
  const evict = (p: unknown, id: string): string => JSON.stringify({ t: 'evict', e: 'lobby', u: 'bob', c: 'b#1', why: 'replaced', from: 'a', id, p })
  await a.transport.bus.publish('node:b', evict(null, 'a#h-null'))
  const call = await b.local.calls.next((c) => c.kind === 'evict', 5000, 'the eviction')
  t.same(call, { kind: 'evict', user: 'bob', id: 'b#1', why: 'replaced' }, 'params that are not an object are taken as none: a plain replace')
  await a.transport.bus.publish('node:b', evict({ room: 7 }, 'a#h-number'))
  t.same(await b.local.calls.next((c) => c.kind === 'evict', 5000, 'the second eviction'), { kind: 'evict', user: 'bob', id: 'b#1', why: 'replaced' }, 'nor an object of non-strings')
  b.local.failEvict = true
  await a.transport.bus.publish('node:b', evict({ room: 'r' }, 'a#h-fail'))
  const failed = await eventually(async () => (await b.metrics.brokerErrors.get()).values.find((v) => v.labels.op === 'evict')?.value ?? 0, (n) => n === 1, 5000, 'the failed eviction counted')
  t.equal(failed, 1, 'an eviction that throws is counted as a broker error, not an unhandled rejection')
})
