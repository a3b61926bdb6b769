/**
 * Several connections per user (`duplicate: "allow"`, PROTOCOL.md §6a) in a
 * cluster: real `gatehouse` nodes sharing a real redis-server. One user
 * with a connection on each node: a send to the user down either node's
 * link reaches both, a node that dies has its connection reported closed
 * with its conn, and the SDK sends once per cluster.
 */
import t from 'tap'
import { Redis } from 'ioredis'
import { GatehouseBackend } from '../src/sdk/index.js'
import { BACKEND_TOKEN, captureLogger } from './sdk-fixtures.js'
import { connect, refusal } from './helpers/client.js'
import { clusterBackendFor, eventually, startNode, TEST_CLUSTER, type ClusterBackend, type NodeEvent } from './helpers/cluster.js'
import { redisFor } from './helpers/redis.js'
import { tokenFor } from './helpers/tokens.js'
import { Inbox } from './helpers/waiter.js'

const allow = (backend: string | Record<string, unknown>, extra: Record<string, unknown> = {}) => [{ name: 'lobby', path: '/lobby', backend, duplicate: 'allow', maxPerUser: 4, ...extra }]

async function openOf (backend: ClusterBackend, user: string, via: string): Promise<NodeEvent> {
  return await backend.events.next((e) => e.event === 'open' && e.user === user && e.via === via, 15000, `open of ${user} via ${via}`)
}

t.test('one user on two nodes: a send to the user through either node reaches both connections', async (t) => {
  const redis = await redisFor(t)
  const backend = await clusterBackendFor(t)
  const [a, b] = await Promise.all(['node-a', 'node-b'].map(async (id) => await startNode(t, id, redis.url, allow(backend.url))))
  await Promise.all([backend.hellos.next(), backend.hellos.next()])

  const onA = await connect(a.url('/lobby'), { token: tokenFor('alice') })
  const openA = await openOf(backend, 'alice', 'node-a')
  const onB = await connect(b.url('/lobby'), { token: tokenFor('alice') })
  const openB = await openOf(backend, 'alice', 'node-b')
  t.not(openA.conn, openB.conn, 'each connection its own conn')
  t.equal(backend.events.all.filter((e) => e.event === 'close').length, 0, 'the second node closed nobody')

  for (let i = 0; i < 20; i++) backend.sendVia('node-a', 'lobby', { action: 'send', user: 'alice', data: { i } })
  for (let i = 0; i < 20; i++) t.same(JSON.parse(String(await onA.next())), { i }, `the connection on node A gets ${i}, in order`)
  for (let i = 0; i < 20; i++) t.same(JSON.parse(String(await onB.next())), { i }, `the connection on node B gets ${i} (forwarded), in order`)

  backend.sendVia('node-b', 'lobby', { action: 'send', users: ['alice'], data: 'via b' })
  t.equal(await onA.next(), 'via b', 'a users list through node B reaches the connection on node A')
  t.equal(await onB.next(), 'via b', 'and the one on node B, once')

  backend.sendVia('node-b', 'lobby', { action: 'send', conn: openB.conn, data: 'just b' })
  backend.sendVia('node-a', 'lobby', { action: 'send', conn: openA.conn, data: 'just a' })
  t.equal(await onB.next(), 'just b', 'a conn target down its own node\'s link reaches that connection')
  t.equal(await onA.next(), 'just a', 'and only that one')

  // bad input: a conn target down the wrong node's link is not forwarded; it is dropped and counted there
  backend.sendVia('node-a', 'lobby', { action: 'send', conn: openB.conn, data: 'wrong link' })
  await eventually(async () => await a.metric('gatehouse_dropped_actions_total', { reason: 'not_connected' }), (n) => n === 1, 10000, 'the misrouted conn action counted')
  const spoiler = new Redis(redis.url)
  t.teardown(() => spoiler.disconnect())
  await spoiler.publish(`${TEST_CLUSTER.name}:all`, '{"t":"actions","e":"lobby","a":[{"action":"send"}]')
  await eventually(async () => await b.metric('gatehouse_broker_errors_total', { op: 'message' }), (n) => n === 1, 10000, 'the malformed cluster message counted')
  t.equal((await refusal(b.url('/lobby'), { token: 'not-a-jwt' })).status, 401, 'a bad token on a cluster node: 401')
  backend.sendVia('node-a', 'lobby', { action: 'send', user: 'alice', data: 'still' })
  t.equal(await onB.next(), 'still', 'node B carries on: the wrong-link action never reached it, the next send does')
  t.equal(await onA.next(), 'still', 'as does node A')

  backend.sendVia('node-a', 'lobby', { action: 'close', user: 'alice', code: 4000, reason: 'everywhere' })
  t.same(await onA.closed, { code: 4000, reason: 'everywhere' }, 'a close to the user closes the connection on node A')
  t.same(await onB.closed, { code: 4000, reason: 'everywhere' }, 'and the one on node B')
  const closes = [await backend.events.next((e) => e.event === 'close'), await backend.events.next((e) => e.event === 'close')]
  t.same(closes.map((e) => `${e.via} ${e.conn}`).sort(), [`node-a ${openA.conn}`, `node-b ${openB.conn}`].sort(), 'each close comes by its own node, with its conn')
})

t.test('a node that dies: a survivor reports its connection closed (1006) with its conn, resumed or not; the others stay', async (t) => {
  const redis = await redisFor(t)
  const backend = await clusterBackendFor(t)
  const [a, b] = await Promise.all(['node-a', 'node-b'].map(async (id) => await startNode(t, id, redis.url, allow(backend.url, { resumeGraceMs: 10000 }))))
  await Promise.all([backend.hellos.next(), backend.hellos.next()])
  const onA = await connect(a.url('/lobby'), { token: tokenFor('bob') })
  await openOf(backend, 'bob', 'node-a')
  const onB = await connect(b.url('/lobby'), { token: tokenFor('bob') })
  const openB = await openOf(backend, 'bob', 'node-b')
  // a blip on node B: the same connection resumes there, unseen by the backend
  onB.ws.terminate()
  await b.run.lines.next((l) => /holding its session/.test(String(l.msg)), 15000, 'node B holding the session')
  const resumed = await connect(b.url('/lobby'), { token: tokenFor('bob') })
  resumed.ws.send('back')
  t.equal((await backend.events.next((e) => e.event === 'message' && e.user === 'bob')).conn, openB.conn, 'the resumed socket speaks as the held connection')
  b.run.child.kill('SIGKILL')
  const lost = await backend.events.next((e) => e.event === 'close' && e.user === 'bob', 20000, 'the dead node\'s close')
  t.same([lost.via, lost.conn, lost.code, lost.reason], ['node-a', openB.conn, 1006, 'gateway node lost'], 'node A reports the dead node\'s connection, naming its conn')
  backend.sendVia('node-a', 'lobby', { action: 'send', user: 'bob', data: 'you stay' })
  t.equal(await onA.next(), 'you stay', 'the connection on the live node is untouched')
  t.equal(backend.events.all.filter((e) => e.event === 'open').length, 2, 'two opens in all: the resume was no new connection')
  await eventually(async () => await a.metric('gatehouse_cluster_lost_users_total'), (n) => n >= 1, 15000, 'the reap counted')
  t.equal(await a.metric('gatehouse_cluster_lost_users_total'), 1, 'node A reported one lost connection: the resume left no second record behind')
  t.equal(backend.events.all.filter((e) => e.event === 'close').length, 1, 'one close in all')
})

t.test('the SDK sends to a user once per cluster: each connection gets the frame once', async (t) => {
  const redis = await redisFor(t)
  const frames = new Inbox<string>()
  const service = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, {
    onOpen: (user, _claims, _params, { conn }) => frames.push(`open ${user} ${conn}`)
  })
  const { url } = await service.listen()
  t.teardown(() => service.stop())
  const [a, b] = await Promise.all(['node-a', 'node-b'].map(async (id) => await startNode(t, id, redis.url, allow({ url, token: BACKEND_TOKEN }))))
  const onA = await connect(a.url('/lobby'), { token: tokenFor('carol') })
  await frames.next((f) => f.startsWith('open carol'))
  const onB = await connect(b.url('/lobby'), { token: tokenFor('carol') })
  await frames.next((f) => f.startsWith('open carol'))
  t.equal(service.connections('carol').length, 2, 'the roster knows both connections')
  t.equal(new Set(service.connections('carol').map((c) => c.gateway)).size, 2, 'through two gateways')
  t.equal(service.send('carol', 'once'), 1, 'one user sent to')
  t.equal(service.send('carol', 'twice'), 1, 'and again')
  for (const [name, client] of [['A', onA], ['B', onB]] as const) {
    t.equal(await client.next(), 'once', `the connection on node ${name} gets the first frame`)
    t.equal(await client.next(), 'twice', `then the second, with no duplicate of the first in between (node ${name})`)
  }
  t.equal(await a.metric('gatehouse_dropped_actions_total'), 0, 'nothing dropped on A')
  t.equal(await b.metric('gatehouse_dropped_actions_total'), 0, 'nor on B')
})
