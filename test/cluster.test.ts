/**
 * Scale-out (issue 4): gateway processes sharing a real redis-server behave
 * as one gateway. Nodes are real `gatehouse` processes; the backend is one
 * `ws` server that sees every node's link.
 */
import t from 'tap'
import { Redis } from 'ioredis'
import { GatehouseBackend } from '../src/sdk/index.js'
import { BACKEND_TOKEN, call, captureLogger, recorder } from './sdk-fixtures.js'
import { backendFor } from './helpers/backend.js'
import { runCli } from './helpers/cli.js'
import { connect, refusal, type TestClient } from './helpers/client.js'
import { clusterBackendFor, eventually, startNode, TEST_CLUSTER, type GatewayNode } from './helpers/cluster.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { freePort } from './helpers/ports.js'
import { redisFor } from './helpers/redis.js'
import { SECRET, tokenFor } from './helpers/tokens.js'

const endpoints = (backend: string) => [
  { name: 'lobby', path: '/lobby', backend },
  { name: 'duel', path: '/duel', backend, duplicate: 'reject' }
]

async function threeNodes (t: { teardown (fn: () => unknown): void }, redis: string, backend: string, cluster: Record<string, unknown> = {}): Promise<GatewayNode[]> {
  return await Promise.all(['node-a', 'node-b', 'node-c'].map(async (id) => await startNode(t, id, redis, endpoints(backend), cluster)))
}

t.test('three nodes, one backend: clients spread across nodes, actions reach users wherever they are', async (t) => {
  const redis = await redisFor(t)
  const backend = await clusterBackendFor(t)
  const [a, b, c] = await threeNodes(t, redis.url, backend.url)
  const hellos = await Promise.all([0, 1, 2, 3, 4, 5].map(async () => await backend.hellos.next()))
  t.same(new Set(hellos.map((h) => h.gateway)), new Set(['node-a', 'node-b', 'node-c']), 'every node dials the backend with its node id')
  t.ok(hellos.every((h) => h.cluster === TEST_CLUSTER.name), 'and names its cluster in hello')

  const alice = await connect(a.url('/lobby'), { token: tokenFor('alice') })
  const bob = await connect(b.url('/lobby'), { token: tokenFor('bob') })
  const carol = await connect(c.url('/lobby'), { token: tokenFor('carol') })
  t.equal((await backend.events.next((e) => e.event === 'open' && e.user === 'alice')).via, 'node-a', "alice's open came through node-a")
  t.equal((await backend.events.next((e) => e.event === 'open' && e.user === 'bob')).via, 'node-b', "bob's open came through node-b")
  t.equal((await backend.events.next((e) => e.event === 'open' && e.user === 'carol')).via, 'node-c', "carol's open came through node-c")

  // an action via node A for a user on node C, in order
  for (let i = 0; i < 50; i++) backend.sendVia('node-a', 'lobby', { action: 'send', user: 'carol', data: { i } })
  for (let i = 0; i < 50; i++) t.same(JSON.parse(String(await carol.next())), { i }, `carol gets ${i} in order`)
  t.equal(await a.metric('gatehouse_cluster_forwards_total', { direction: 'out' }), 50, 'node A forwarded 50 actions')
  t.equal(await c.metric('gatehouse_cluster_forwards_total', { direction: 'in' }), 50, 'node C received 50')

  // a users list fans out to every node concerned; `all` reaches the whole cluster exactly once;
  // actions sent down one link keep their order per user, local or forwarded
  backend.sendVia('node-b', 'lobby', { action: 'send', users: ['alice', 'bob', 'carol', 'nobody'], data: 'list' })
  backend.sendVia('node-b', 'lobby', { action: 'send', all: true, data: 'everyone' })
  backend.sendVia('node-b', 'lobby', { action: 'send', users: ['bob', 'carol'], data: 'after' })
  for (const [name, client] of [['alice', alice], ['bob', bob], ['carol', carol]] as Array<[string, TestClient]>) {
    t.equal(await client.next(), 'list', `${name} got the users list`)
    t.equal(await client.next(), 'everyone', `${name} got the broadcast`)
  }
  t.equal(await bob.next(), 'after', 'bob (local to B): per-user order kept')
  t.equal(await carol.next(), 'after', 'carol (forwarded): per-user order kept')
  // (as not_connected, or as broker_unavailable within a lease of joining, while other nodes may still be registering)
  t.equal(await eventually(async () => await b.metric('gatehouse_dropped_actions_total'), (n) => n === 1), 1,
    'a user connected nowhere is dropped and counted by the node that was asked')

  // a close action via another node; its close event comes by the user's own node
  backend.sendVia('node-c', 'lobby', { action: 'close', user: 'alice', code: 4000, reason: 'bye' })
  t.same(await alice.closed, { code: 4000, reason: 'bye' }, 'alice is closed with the code and reason sent via node C')
  const closed = await backend.events.next((e) => e.event === 'close' && e.user === 'alice')
  t.equal(closed.via, 'node-a', 'the close is reported by the node that held alice')

  // garbage on a node's channel: counted, logged, and the node carries on
  const spoiler = new Redis(redis.url)
  t.teardown(() => spoiler.disconnect())
  await spoiler.publish(`${TEST_CLUSTER.name}:node:node-b`, 'not json{')
  await eventually(async () => await b.metric('gatehouse_broker_errors_total', { op: 'message' }), (n) => n === 1, 5000, 'the bad message counted')
  backend.sendVia('node-a', 'lobby', { action: 'send', user: 'bob', data: 'still here' })
  t.equal(await bob.next(), 'still here', 'node B carries on after the bad message: bob is still served')

  // wrong token on a cluster node: 401, nothing registered
  t.equal((await refusal(b.url('/lobby'), { token: 'not-a-jwt' })).status, 401, 'a bad token on a cluster node: 401')
  t.equal(await b.metric('gatehouse_cluster_claims_total'), 1, 'only bob was ever claimed on node B')
})

t.test('duplicates across nodes: replace closes the old socket before the new open; reject answers 409', async (t) => {
  const redis = await redisFor(t)
  const backend = await clusterBackendFor(t)
  const [a, b, c] = await threeNodes(t, redis.url, backend.url)

  const first = await connect(a.url('/lobby'), { token: tokenFor('dana') })
  await backend.events.next((e) => e.event === 'open' && e.user === 'dana')
  first.ws.send('from the first tab')
  const second = await connect(b.url('/lobby'), { token: tokenFor('dana') })
  t.same(await first.closed, { code: 4409, reason: 'replaced by a newer connection' }, 'the old socket on node A gets 4409')
  const message = await backend.events.next((e) => e.user === 'dana')
  t.same([message.event, message.via, message.data], ['message', 'node-a', 'from the first tab'], "dana's message from the first tab is reported by node A before the close")
  const close = await backend.events.next((e) => e.user === 'dana')
  const open = await backend.events.next((e) => e.user === 'dana')
  t.same([close.event, close.via, close.code], ['close', 'node-a', 4409], 'close(old) first, from node A')
  t.same([open.event, open.via], ['open', 'node-b'], 'then open(new), from node B')
  backend.sendVia('node-c', 'lobby', { action: 'send', user: 'dana', data: 'found you' })
  t.equal(await second.next(), 'found you', 'presence now points at node B')

  // reject: the second handshake on another node is refused before any socket opens
  const holder = await connect(a.url('/duel'), { token: tokenFor('erin') })
  await backend.events.next((e) => e.event === 'open' && e.user === 'erin' && e.endpoint === 'duel')
  const refused = await refusal(c.url('/duel'), { token: tokenFor('erin') })
  t.equal(refused.status, 409, 'reject across nodes: 409')
  t.equal(refused.opened, false, 'the refused handshake opened no socket')
  holder.ws.close(1000)
  await backend.events.next((e) => e.event === 'close' && e.user === 'erin')
  const after = await connect(c.url('/duel'), { token: tokenFor('erin') })
  t.equal((await backend.events.next((e) => e.event === 'open' && e.user === 'erin')).via, 'node-c', 'once the holder left, another node admits the user')
  after.ws.close(1000)
})

t.test('a node killed with SIGKILL: a survivor reports its users closed (1006) within the lease', async (t) => {
  const redis = await redisFor(t)
  const backend = await clusterBackendFor(t)
  const [a, , c] = await threeNodes(t, redis.url, backend.url)
  const users = ['fay', 'gus', 'hal']
  for (const user of users) {
    await connect(c.url('/lobby'), { token: tokenFor(user) })
    await backend.events.next((e) => e.event === 'open' && e.user === user)
  }
  const killedAt = Date.now()
  c.run.child.kill('SIGKILL')
  const closes = await Promise.all(users.map(async (user) => await backend.events.next((e) => e.event === 'close' && e.user === user, 15000)))
  const tookMs = Date.now() - killedAt
  for (const close of closes) {
    t.same([close.code, close.reason], [1006, 'gateway node lost'], `${close.user} reported closed with 1006`)
    t.not(close.via, 'node-c', 'by a surviving node')
  }
  t.ok(tookMs < TEST_CLUSTER.presenceTtlMs * 3, `reported ${tookMs} ms after the kill (lease ${TEST_CLUSTER.presenceTtlMs} ms)`)
  // the user comes back on a survivor; nothing of the dead node is reported again
  const back = await connect(a.url('/lobby'), { token: tokenFor('fay') })
  const reopened = await backend.events.next((e) => e.user === 'fay')
  t.same([reopened.event, reopened.via], ['open', 'node-a'], "fay's reopen is reported by node A")
  back.ws.close(1000)
  await backend.events.next((e) => e.event === 'close' && e.user === 'fay')
})

t.test('Redis restarted under traffic: clients stay connected, nothing is delivered twice or out of order', async (t) => {
  const redis = await redisFor(t)
  const backend = await clusterBackendFor(t)
  const nodes = await threeNodes(t, redis.url, backend.url)
  const ids = nodes.map((n) => n.id)
  const users = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5']
  // every message is echoed through the NEXT node's link, so each echo crosses Redis
  let echoed = 0
  backend.onEvent = (event) => {
    if (event.event !== 'message') return
    echoed++
    const other = ids[(ids.indexOf(event.via) + 1) % ids.length]
    backend.sendVia(other, 'lobby', { action: 'send', user: event.user, data: event.data })
  }
  const clients = await Promise.all(users.map(async (user, i) => await connect(nodes[i % 3].url('/lobby'), { token: tokenFor(user) })))
  const sent = new Map(users.map((u) => [u, 0]))
  let sending = true
  const traffic = Promise.all(clients.map(async (client, i) => {
    while (sending) {
      const n = sent.get(users[i]) as number
      client.ws.send(JSON.stringify(n))
      sent.set(users[i], n + 1)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }))
  const received = new Map(users.map((u) => [u, [] as number[]]))
  clients.forEach((client, i) => client.ws.on('message', (data) => received.get(users[i])?.push(Number(data.toString()))))

  await eventually(async () => echoed, (n) => n > 100, 10000, 'traffic to flow')
  await redis.stop()
  const degraded = await eventually(async () => await nodes[0].get('/readyz'), (r) => r.body.includes('degraded'), 10000, 'readyz to say degraded')
  t.equal(degraded.status, 200, 'without Redis a node is degraded but still ready: it serves its clients')
  const whileDown = echoed
  await eventually(async () => echoed, (n) => n > whileDown + 100, 10000, 'client messages to keep reaching the backend without Redis')
  await redis.start()
  await Promise.all(nodes.map(async (n) => await eventually(async () => await n.get('/readyz'), (r) => JSON.parse(r.body).status === 'ready', 15000, `${n.id} to rejoin`)))
  const rejoined = echoed
  await eventually(async () => echoed, (n) => n > rejoined + 100, 10000, 'traffic after Redis returned')
  sending = false
  await traffic
  // the last frames sent may still be on their way
  await Promise.all(users.map(async (user) => await backend.events.next((e) => e.event === 'message' && e.user === user && Number(e.data) === (sent.get(user) as number) - 1, 10000, `${user}'s last message`)))

  // the backend saw every client message exactly once, in order
  for (const user of users) {
    const seen = backend.events.all.filter((e) => e.event === 'message' && e.user === user).map((e) => e.data)
    t.same(seen, [...Array(sent.get(user)).keys()], `${user}: all ${sent.get(user)} messages reached the backend once, in order`)
  }
  // every echo arrived at most once and in order; every missing one was counted as dropped
  const dropped = async (): Promise<number> => (await Promise.all(nodes.map(async (n) => await n.metric('gatehouse_dropped_actions_total', { reason: 'broker_unavailable' })))).reduce((x, y) => x + y, 0)
  const total = (): number => [...received.values()].reduce((sum, list) => sum + list.length, 0)
  const echoes = [...sent.values()].reduce((x, y) => x + y, 0)
  const lost = (await eventually(async () => ({ dropped: await dropped(), delivered: total(), echoes }), (n) => n.dropped + n.delivered === echoes, 10000, 'echoes delivered + echoes counted as dropped to add up')).dropped
  t.ok(lost > 0, `${lost} echoes were dropped (and counted) while Redis was away`)
  for (const user of users) {
    const list = received.get(user) as number[]
    t.ok(list.every((n, i) => i === 0 || n > list[i - 1]), `${user}: ${list.length} echoes, none twice, none out of order`)
  }
  for (const client of clients) t.equal(client.ws.readyState, client.ws.OPEN, 'still connected')
  t.equal(backend.events.all.filter((e) => e.event === 'close').length, 0, 'the backend saw no client close')

  // presence was registered again: a replace across nodes works as before
  const again = await connect(nodes[1].url('/lobby'), { token: tokenFor('u0') })
  t.equal((await clients[0].closed).code, 4409, 'u0 on node A replaced from node B after the restart')
  again.ws.close(1000)
})

t.test('gatehouse --workers 3: three nodes on one port; refused without Redis', async (t) => {
  const redis = await redisFor(t)
  const backend = await clusterBackendFor(t)
  const node = await startNode(t, 'w', redis.url, [{ name: 'lobby', path: '/lobby', backend: backend.url }], {}, ['--workers', '3'])
  const hellos = await Promise.all([0, 1, 2].map(async () => await backend.hellos.next()))
  t.same(hellos.map((h) => h.gateway).sort(), ['w-1', 'w-2', 'w-3'], 'each worker is a node, named from server.nodeId')
  const users = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6']
  const clients = await Promise.all(users.map(async (user) => await connect(node.url('/lobby'), { token: tokenFor(user) })))
  const opens = await Promise.all(users.map(async (user) => await backend.events.next((e) => e.event === 'open' && e.user === user)))
  t.equal(new Set(opens.map((o) => o.via)).size, 3, 'connections to the one port spread over the three workers')
  backend.sendVia('w-1', 'lobby', { action: 'send', users, data: 'via w-1' })
  for (const client of clients) t.equal(await client.next(), 'via w-1', 'an action through one worker reaches users on all of them')

  node.run.child.kill('SIGTERM')
  for (const client of clients) t.equal((await client.closed).code, 1001, 'SIGTERM drains every worker (1001)')
  t.equal(await node.run.exited, 0, 'and the primary exits 0')

  const refused = runCli(testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }]), {}, ['--workers', '2'])
  t.equal(await refused.exited, 1, '--workers 2 without cluster.redis exits 1')
  t.match(refused.stderr(), /--workers is 2, but more than one worker needs cluster\.redis/, 'and says why')
})

t.test('Redis unreachable from the start: the node serves degraded; whenRedisDown decides new handshakes', async (t) => {
  const backend = await backendFor(t)
  const dead = `redis://127.0.0.1:${await freePort()}`
  const cluster = { ...TEST_CLUSTER, redis: dead }
  const accepting = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }], { cluster }))
  await backend.next('hello')
  const ready = await accepting.get('/readyz')
  t.same([ready.status, JSON.parse(ready.body).status, JSON.parse(ready.body).broker], [200, 'degraded', 'down'], 'readyz: 200, degraded, broker down')
  t.equal(await accepting.metric('gatehouse_broker_up'), 0, 'gatehouse_broker_up is 0')
  const client = await connect(accepting.url('/lobby'), { token: tokenFor('ivy') })
  await backend.next('open', 'ivy')
  t.equal(await accepting.metric('gatehouse_cluster_claims_total', { outcome: 'unchecked' }), 1, 'admitted unchecked (default policy: accept), and counted')
  backend.send({ action: 'send', user: 'nobody-here', data: 'x' })
  t.equal(await eventually(async () => await accepting.metric('gatehouse_dropped_actions_total', { reason: 'broker_unavailable' }), (n) => n === 1), 1,
    'an action for a user not held here cannot be forwarded: dropped and counted')
  client.ws.close(1000)

  const backend2 = await backendFor(t)
  const rejecting = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: backend2.url }], { cluster: { ...cluster, whenRedisDown: 'reject' } }))
  await backend2.next('hello')
  const refused = await refusal(rejecting.url('/lobby'), { token: tokenFor('jay') })
  t.equal(refused.status, 503, 'whenRedisDown: reject refuses with 503')
  t.match(JSON.parse(refused.body), { code: 'GW_ERR_CLUSTER_UNAVAILABLE' }, 'the refusal names GW_ERR_CLUSTER_UNAVAILABLE')
  t.equal((await refusal(rejecting.url('/lobby'), { token: 'forged.token.here' })).status, 401, 'a bad token is still a 401, before any cluster check')
  t.notOk(accepting.logs.some((line) => line.includes(SECRET)), 'no secret in any log line')
})


t.test('the SDK with a cluster: broadcast once per cluster, moves without stray closes, a dead node reported by a survivor', async (t) => {
  const redis = await redisFor(t)
  const { handlers, calls } = recorder()
  // a long link grace: a close of the dead node's users can only come from a survivor's report
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger(), linkGraceMs: 60000 }, handlers)
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  const spec = [{ name: 'lobby', path: '/lobby', backend: { url, token: BACKEND_TOKEN, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }]
  const [a, b] = await Promise.all(['sdk-a', 'sdk-b'].map(async (id) => await startNode(t, id, redis.url, spec)))

  const kim = await connect(a.url('/lobby'), { token: tokenFor('kim') })
  const lee = await connect(b.url('/lobby'), { token: tokenFor('lee') })
  await call(calls, 'open kim')
  await call(calls, 'open lee')
  backend.broadcast('hi all')
  backend.send(['kim', 'lee'], 'next')
  for (const client of [kim, lee]) t.same([await client.next(), await client.next()], ['hi all', 'next'], 'one broadcast reaches each client once')

  // kim moves to node B: the SDK sees close then open, and sends no close action of its own
  const kim2 = await connect(b.url('/lobby'), { token: tokenFor('kim') })
  t.equal((await kim.closed).code, 4409, "kim's old socket on node A gets 4409")
  t.equal(await call(calls, 'close kim'), 'close kim 4409 replaced by a newer connection', "the SDK sees kim's close (4409, replaced)")
  t.equal(await call(calls, 'open kim'), 'open kim {}', "then kim's open again")
  backend.send('kim', 'still you')
  t.equal(await kim2.next(), 'still you', 'the new connection is untouched')

  const mo = await connect(a.url('/lobby'), { token: tokenFor('mo') })
  await call(calls, 'open mo')
  a.run.child.kill('SIGKILL')
  t.equal(await call(calls, 'close mo'), 'close mo 1006 gateway node lost', "node B's report of the dead node's user is taken")
  t.equal((await mo.closed).code, 1006, 'the player lost its socket with the node')
  t.same(backend.users().sort(), ['kim', 'lee'], 'the SDK holds kim and lee, not mo')
  t.equal(backend.stats.badFrames, 0, 'the SDK saw no bad frames')
})
