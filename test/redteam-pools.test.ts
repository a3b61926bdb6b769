/**
 * Red team of pools in a cluster and of the admin API (docs/pools.md,
 * "Joining at run time", "Clusters"): real `gatehouse` node processes, a real
 * redis-server, real member sockets. Each test names the attack; those
 * marked "held" pin behaviour the code already had.
 */
import t from 'tap'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import { WebSocketServer } from 'ws'
import { eventually, startNode, type GatewayNode } from './helpers/cluster.js'
import { redisFor } from './helpers/redis.js'
import { freePort } from './helpers/ports.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { tokenFor } from './helpers/tokens.js'
import { connect } from './helpers/client.js'
import { pick } from '../src/pool/hrw.js'
import { GatehouseBackend } from '../src/sdk/index.js'
import { Inbox } from './helpers/waiter.js'
import { BACKEND_TOKEN, captureLogger } from './sdk-fixtures.js'

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

t.test('broke (a token under ?token= was logged in the request line; every query value is redacted now), held (the rest): the admin token cannot be bypassed by header or path tricks, and neither it nor a member URL\'s credentials reach a log line, a response or /metrics', async (t) => {
  const m0 = await quietMember(t)
  const gateway = await startGateway(t, testConfig(poolEndpoint(m0, 5000), { admin: { token: ADMIN_TOKEN, leaseMs: 60000 }, log: { level: 'trace' } }))
  const base = `http://127.0.0.1:${gateway.port}/_gatehouse/pools/game`
  const tries: Array<[string, Record<string, string>, string]> = [
    ['no header', {}, ''],
    ['an empty bearer', { authorization: 'Bearer ' }, ''],
    ['a prefix of the token', { authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}` }, ''],
    ['the token and more', { authorization: `Bearer ${ADMIN_TOKEN}x` }, ''],
    ['the token then a second word', { authorization: `Bearer ${ADMIN_TOKEN} ${ADMIN_TOKEN}` }, ''],
    ['the token in upper case', { authorization: `Bearer ${ADMIN_TOKEN.toUpperCase()}` }, ''],
    ['Basic auth with the token', { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` }, ''],
    ['the token in the query', {}, `?token=${ADMIN_TOKEN}`],
    ['the token in another header', { 'x-admin-token': ADMIN_TOKEN }, ''],
    ['a token with a NUL after it', { authorization: `Bearer ${ADMIN_TOKEN}%00` }, '']
  ]
  for (const [what, headers, query] of tries) {
    for (const [method, path] of [['GET', ''], ['PUT', '/members/x'], ['DELETE', '/members/m0']]) {
      const res = await fetch(`${base}${path}${query}`, { method, headers: { ...headers, 'content-type': 'application/json' }, body: method === 'PUT' ? JSON.stringify({ url: 'ws://127.0.0.1:1' }) : undefined })
      const text = await res.text()
      t.equal(res.status, 401, `${what}, ${method}: 401`)
      t.notOk(text.includes(ADMIN_TOKEN), `${what}, ${method}: the answer does not echo the token`)
    }
  }
  // paths: encoded slashes, dot segments and an unknown endpoint reach no other route, and each still needs the token
  t.equal((await fetch(`http://127.0.0.1:${gateway.port}/_gatehouse/pools/game%2Fmembers%2Fx`)).status, 401, 'an encoded slash in the endpoint: still 401 without the token')
  t.not((await fetch(`http://127.0.0.1:${gateway.port}/_gatehouse/pools/game/members/%2e%2e/m0`, { method: 'DELETE' })).status, 204, 'encoded dot segments without the token delete nothing')
  t.equal((await admin({ port: gateway.port } as GatewayNode, 'DELETE', 'game/members/..%2Fm0')).status, 404, 'an id "../m0" names no member: 404, m0 untouched')
  t.equal((await admin({ port: gateway.port } as GatewayNode, 'DELETE', 'game/members/m0')).status, 409, 'm0 from the config cannot be deleted')

  // a member id built to break the metrics text, and a member URL with credentials and a query
  const node = { port: gateway.port } as GatewayNode
  const evilId = 'x"} 1\nevil_metric{a="b'
  const secretUrl = `ws://spy:url-secret-pass@127.0.0.1:${await freePort()}/path?key=query-secret`
  t.equal((await admin(node, 'PUT', `game/members/${encodeURIComponent(evilId)}`, { url: secretUrl })).status, 201, 'an id with quotes and a newline is registered (an id is any string)')
  const long = await admin(node, 'PUT', `game/members/${'é'.repeat(2000)}`, { url: `ws://127.0.0.1:${await freePort()}` })
  t.equal(long.status, 414, `an id of 2,000 two-byte characters is refused before the route (${long.text})`)
  const listing = await admin(node, 'GET', 'game')
  t.equal(listing.status, 200, 'the listing answers')
  t.notOk(/url-secret-pass|query-secret|spy:/.test(listing.text), 'the listing shows the member URL without credentials nor query')
  t.ok(listing.text.includes(JSON.stringify(evilId).slice(1, -1)), 'the listing names the odd id as JSON')
  await gateway.logged(/pool member registered/)
  const metrics = (await gateway.get('/metrics')).body
  t.notOk(/^evil_metric/m.test(metrics), 'the id cannot inject a line into /metrics')
  t.ok(metrics.includes('member="x\\"} 1\\nevil_metric{a=\\"b"'), 'the id is escaped in its label')
  t.equal((await admin(node, 'DELETE', `game/members/${encodeURIComponent(evilId)}`)).status, 204, 'the odd id is deleted by the same encoding')
  t.notOk((await gateway.get('/metrics')).body.includes('evil_metric'), 'its metric series are gone')
  // a player who puts a JWT under a name the gateway does not read is refused; the JWT is not logged either
  const jwt = tokenFor('carol')
  await fetch(`http://127.0.0.1:${gateway.port}/game/m1?token=${jwt}`)
  t.notOk(gateway.logs.some((l) => l.includes(jwt)), 'a JWT in ?token= is in no log line')
  const leaks = gateway.logs.filter((l) => l.includes(ADMIN_TOKEN))
  t.same(leaks, [], 'the admin token is in no log line, at level trace')
  t.notOk(gateway.logs.some((l) => /url-secret-pass|query-secret/.test(l)), 'the member URL\'s credentials and query are in no log line')
})

t.test('broke: a lease in Redis under the id of a member from the config (a member moved from run-time to the config, or a hostile write) ran out and took the healthy member\'s keys away, marking it out', async (t) => {
  const redis = await redisFor(t)
  const m0 = await quietMember(t)
  const m1 = await quietMember(t)
  const endpoints = [{ name: 'game', path: '/game/:matchId', backend: { urls: [{ id: 'm0', url: m0 }, { id: 'm1', url: m1 }], route: 'params.matchId', failoverMs: 5000, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }]
  const node = await startNode(t, 'node-a', redis.url, endpoints, {}, [], { admin: { token: ADMIN_TOKEN, leaseMs: 600 } })
  const raw = new Redis(redis.url)
  t.teardown(() => raw.disconnect())
  await eventually(async () => (await node.get('/readyz')).body, (b) => (b.match(/"up"/g) ?? []).length >= 2, 15000, 'both members up')
  let match = ''
  for (let i = 0; match === ''; i++) if (pick(`m${i}`, [{ id: 'm0', weight: 1 }, { id: 'm1', weight: 1 }])?.id === 'm0') match = `m${i}`
  const alice = await connect(node.url(`/game/${match}`), { token: tokenFor('alice') })
  t.teardown(() => alice.ws.close())
  await eventually(async () => await raw.hget(`${PREFIX}a`, match), (m) => m === 'm0', 10000, 'the match assigned to m0 in Redis')
  // m0's entry first: the expiry look drops in this order, so once `junk` is gone m0's turn has passed
  const expiredLease = JSON.stringify({ url: 'ws://127.0.0.1:1', href: 'ws://127.0.0.1:1/', weight: 1, exp: 1 })
  await raw.hset(`${PREFIX}m`, 'm0', expiredLease)
  await raw.hset(`${PREFIX}m`, 'junk', 'not a lease')
  await eventually(async () => await raw.hexists(`${PREFIX}m`, 'junk'), (n) => n === 0, 10000, 'the malformed lease ended')
  t.equal(await raw.hget(`${PREFIX}a`, match), 'm0', 'the match is still on m0, a member from the config')
  t.equal(await raw.sismember(`${PREFIX}o`, 'm0'), 0, 'm0 is not marked out')
  t.equal(await node.metric('gatehouse_pool_rehomed_clients_total'), 0, 'no player was re-homed')
  t.equal((await node.get('/healthz')).status, 200, 'the node still serves')
})

t.test('broke: an answer to the SDK\'s registration without a usable leaseMs (`{}`, 0, a string) made it PUT again at once, in a loop for ever; it is now a refusal, retried with backoff', async (t) => {
  const answers = ['{}', '{"leaseMs":0}', '{"leaseMs":"15000"}', '{"leaseMs":-5}']
  for (const body of answers) {
    let puts = 0
    const server = createServer((req, res) => {
      req.resume()
      if (req.method === 'PUT') puts++
      res.writeHead(req.method === 'PUT' ? 200 : 204, { 'content-type': 'application/json' }).end(req.method === 'PUT' ? body : undefined)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const logger = captureLogger()
    const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger }, {})
    const registration = backend.register({ gateway: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, endpoint: 'game', id: 'svc', url: 'ws://127.0.0.1:4002', adminToken: ADMIN_TOKEN })
    const warned = await logger.lines.next((l) => /registration refused/.test(l), 5000, `the answer ${body} taken as a refusal`).catch((err: Error) => err.message)
    t.match(warned, /registration refused/, `${body}: logged as a refused registration`)
    t.ok(puts <= 3, `${body}: the SDK backs off instead of looping (${puts} PUTs so far)`)
    t.equal(registration.leaseMs, undefined, `${body}: no lease taken from it`)
    t.notOk(logger.lines.all.some((l) => l.includes(ADMIN_TOKEN)), `${body}: the admin token is in no log line`)
    await backend.stop()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

t.test('broke: a weight of 1e400 (Infinity once parsed) passed `> 0` and was taken (a member winning every new key, a number Redis cannot store); it is a 400 naming body.weight', async (t) => {
  const m0 = await quietMember(t)
  const gateway = await startGateway(t, testConfig(poolEndpoint(m0, 5000), { admin: { token: ADMIN_TOKEN, leaseMs: 60000 } }))
  for (const weight of ['1e400', '-1e400']) {
    const res = await fetch(`http://127.0.0.1:${gateway.port}/_gatehouse/pools/game/members/huge`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: `{"url":"ws://127.0.0.1:1","weight":${weight}}`
    })
    const body = await res.json() as { code?: string, message?: string }
    t.equal(res.status, 400, `weight ${weight}: 400`)
    t.equal(body.code, 'GW_ERR_BAD_REGISTRATION', `weight ${weight}: GW_ERR_BAD_REGISTRATION`)
    t.match(body.message ?? '', /body\.weight/, `weight ${weight}: the message names body.weight`)
  }
  const listing = JSON.parse((await admin({ port: gateway.port } as GatewayNode, 'GET', 'game')).text) as { members: Array<{ id: string }> }
  t.same(listing.members.map((m) => m.id), ['m0'], 'no member was registered')
})

t.test('documented limit: whoever holds the admin token names where the gateway dials, and each member it dials gets backend.token (credentials in the URL do not replace it)', async (t) => {
  const m0 = await quietMember(t)
  const endpoints = poolEndpoint(m0, 5000)
  endpoints[0].backend.token = 'backend-token-that-members-get-0123'
  const gateway = await startGateway(t, testConfig(endpoints, { admin: { token: ADMIN_TOKEN, leaseMs: 60000 } }))
  const heard = new Inbox<string | undefined>()
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  t.teardown(async () => {
    for (const socket of wss.clients) socket.terminate()
    await new Promise((resolve) => wss.close(resolve))
  })
  wss.on('connection', (_socket, req) => heard.push(req.headers.authorization))
  const url = `ws://who:else@127.0.0.1:${(wss.address() as AddressInfo).port}`
  t.equal((await admin({ port: gateway.port } as GatewayNode, 'PUT', 'game/members/spy', { url })).status, 201, 'any reachable URL is registered')
  t.equal(await heard.next(undefined, 10000, 'the dial'), 'Bearer backend-token-that-members-get-0123', 'the member hears backend.token: guard admin.token as backend.token (docs/pools.md)')
})
