/**
 * Red team of pools in a cluster and of the admin API (docs/pools.md,
 * "Joining at run time", "Clusters"): real `gatehouse` node processes, a real
 * redis-server, real member sockets. Each test names the attack; those
 * marked "held" pin behaviour the code already had.
 */
import t from 'tap'
import { Redis } from 'ioredis'
import { WebSocketServer } from 'ws'
import { eventually, startNode, type GatewayNode } from './helpers/cluster.js'
import { redisFor } from './helpers/redis.js'
import { freePort } from './helpers/ports.js'

t.setTimeout(120_000)

const ADMIN_TOKEN = 'red-team-admin-token-0123456789'
const PREFIX = 'gh-test:pool:game:'

async function admin (node: GatewayNode, method: string, path: string, body?: unknown, token = ADMIN_TOKEN): Promise<{ status: number, text: string }> {
  const res = await fetch(`http://127.0.0.1:${node.port}/_gatehouse/pools/${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return { status: res.status, text: await res.text() }
}

/** A member that accepts every link and says nothing (no acks). */
async function quietMember (t: { teardown (fn: () => unknown): void }): Promise<string> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  t.teardown(async () => {
    for (const socket of wss.clients) socket.terminate()
    await new Promise<void>((resolve) => wss.close(() => resolve()))
  })
  return `ws://127.0.0.1:${(wss.address() as { port: number }).port}`
}

function poolEndpoint (url: string, failoverMs: number): Array<{ name: string, path: string, backend: Record<string, unknown> }> {
  return [{ name: 'game', path: '/game/:matchId', backend: { urls: [{ id: 'm0', url }], route: 'params.matchId', failoverMs, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }]
}

t.test('broke: run-time members registered, failed over and deleted leave nothing behind in Redis (a leaked admin token cannot grow the out set and the views without bound)', async (t) => {
  const redis = await redisFor(t)
  const m0 = await quietMember(t)
  const node = await startNode(t, 'node-a', redis.url, poolEndpoint(m0, 300), {}, [], { admin: { token: ADMIN_TOKEN, leaseMs: 60000 } })
  const raw = new Redis(redis.url)
  t.teardown(() => raw.disconnect())
  const ghosts = ['ghost-1', 'ghost-2', 'ghost-3']
  for (const id of ghosts) {
    // nothing listens there: the member stays down, and the cluster (a majority of one) decides it out
    const url = `ws://127.0.0.1:${await freePort()}`
    t.equal((await admin(node, 'PUT', `game/members/${id}`, { url })).status, 201, `${id} registered`)
    await eventually(async () => await node.metric('gatehouse_pool_failovers_total', { endpoint: 'game', member: id }), (n) => n === 1, 15000, `${id} failed over once`)
    t.equal((await admin(node, 'DELETE', `game/members/${id}`)).status, 204, `${id} deleted`)
  }
  const outs = await eventually(async () => await raw.smembers(`${PREFIX}o`), (o) => o.length === 0, 10000, 'no departed member left in the out set').catch((err: Error) => err.message)
  t.same(outs, [], 'the out set holds no departed member')
  const views = await eventually(async () => await raw.hkeys(`${PREFIX}d`), (d) => d.every((m) => !ghosts.includes(m)), 10000, 'no view of a departed member').catch((err: Error) => err.message)
  t.ok(Array.isArray(views) && views.every((m) => !ghosts.includes(m)), `no node's view of a departed member is kept (${JSON.stringify(views)})`)
  for (const id of ghosts) t.equal(await node.metric('gatehouse_pool_failovers_total', { endpoint: 'game', member: id }), 0, `no failover series left for ${id}`)
  t.equal((await node.get('/healthz')).status, 200, 'the node still serves')
})
