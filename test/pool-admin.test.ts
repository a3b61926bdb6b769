/**
 * Pool members joining at run time (docs/pools.md, "Joining at run time";
 * protocol/PROTOCOL.md §10): a real gateway with a static pool of one and
 * `admin` on, real SDK services (one registering itself through the SDK),
 * real players. Registration, listing, deregistration, lease expiry, and
 * every refusal of the admin routes.
 */
import t from 'tap'
import { pick } from '../src/pool/hrw.js'
import { ConfigError, parseConfig } from '../src/index.js'
import { GatehouseBackend } from '../src/sdk/index.js'
import { startGateway, testConfig, type TestGateway } from './helpers/gateway.js'
import { connect, refusal, type TestClient } from './helpers/client.js'
import { tokenFor } from './helpers/tokens.js'
import { BACKEND_TOKEN, call, captureLogger, recorder } from './sdk-fixtures.js'
import type { Inbox } from './helpers/waiter.js'

const ADMIN_TOKEN = 'admin-token-for-tests-0123456789'
const WRONG_TOKEN = 'admin-token-for-tests-9876543210'

interface Service {
  sdk: GatehouseBackend
  url: string
  calls: Inbox<string>
}

async function service (t: { teardown (fn: () => unknown): void }): Promise<Service> {
  const { handlers, calls } = recorder()
  const sdk = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger() }, handlers)
  const { url } = await sdk.listen()
  t.teardown(async () => await sdk.stop())
  return { sdk, url, calls }
}

function adminConfig (staticUrl: string, admin: Record<string, unknown> = {}, backend: Record<string, unknown> = {}, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return testConfig([{
    name: 'game',
    path: '/game/:matchId',
    backend: {
      urls: [{ id: 'a', url: staticUrl }],
      route: 'params.matchId',
      token: BACKEND_TOKEN,
      acks: true,
      lingerMs: 0,
      minReconnectDelayMs: 20,
      maxReconnectDelayMs: 200,
      ...backend
    }
  }], { admin: { token: ADMIN_TOKEN, ...admin }, ...overrides })
}

interface Answer {
  status: number
  body: any
}

async function adminCall (gateway: TestGateway, method: string, path: string, options: { token?: string | null, body?: unknown } = {}): Promise<Answer> {
  const token = options.token === undefined ? ADMIN_TOKEN : options.token
  const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` }
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(`http://127.0.0.1:${gateway.port}${path}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

interface Listing {
  state: string
  members: Array<{ id: string, url: string, weight: number, state: string, keys: number, clients: number, lease: boolean }>
}

async function listing (gateway: TestGateway): Promise<Listing> {
  const { status, body } = await adminCall(gateway, 'GET', '/_gatehouse/pools/game')
  if (status !== 200) throw new Error(`GET the pool: ${status} ${JSON.stringify(body)}`)
  return body as Listing
}

/** Polls the listing until `done` holds; the pool changes on link events the test cannot await directly. */
async function listed (gateway: TestGateway, done: (l: Listing) => boolean, what: string): Promise<Listing> {
  for (let i = 0; i < 600; i++) {
    const l = await listing(gateway)
    if (done(l)) return l
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`the pool never showed ${what}: ${JSON.stringify(await listing(gateway))}`)
}

const member = (l: Listing, id: string): Listing['members'][number] | undefined => l.members.find((m) => m.id === id)

function owner (key: string, ids: string[]): string {
  return (pick(key, ids.map((id) => ({ id, weight: 1 }))) as { id: string }).id
}

async function player (gateway: TestGateway, user: string, match: string): Promise<TestClient & { dropped: () => boolean }> {
  const client = await connect(gateway.url(`/game/${match}`), { token: tokenFor(user) })
  let dropped = false
  void client.closed.then(() => { dropped = true })
  return { ...client, dropped: () => dropped }
}

t.test('a service registers through the SDK: new matches reach it, live ones stay; GET lists both; stop() moves its matches back, players stay connected', async (t) => {
  const a = await service(t)
  const b = await service(t)
  const gateway = await startGateway(t, adminConfig(a.url, { leaseMs: 1500 }))
  await listed(gateway, (l) => member(l, 'a')?.state === 'up', 'a up')

  // live before b joins, among them matches b would win by HRW
  const live = await Promise.all(Array.from({ length: 8 }, async (_, i) => await player(gateway, `live-${i}`, `live-${i}`)))
  for (let i = 0; i < live.length; i++) await call(a.calls, `open live-${i}`)
  t.ok(Array.from({ length: 8 }, (_, i) => owner(`live-${i}`, ['a', 'b'])).includes('b'), 'some live match is one b would win')

  const registration = b.sdk.register({ gateway: `http://127.0.0.1:${gateway.port}`, endpoint: 'game', id: 'b', url: b.url, adminToken: ADMIN_TOKEN })
  await registration.registered
  t.equal(registration.leaseMs, 1500, 'the gateway answered the lease')
  await listed(gateway, (l) => member(l, 'b')?.state === 'up', 'b up')

  for (let i = 0; i < live.length; i++) live[i].ws.send(JSON.stringify({ still: i }))
  for (let i = 0; i < live.length; i++) await call(a.calls, `message live-${i}`)
  t.notOk(b.calls.all.some((c) => c.includes('live-')), 'no live match moved to the member that joined')

  const fresh = Array.from({ length: 30 }, (_, i) => `new-${i}`)
  const toB = fresh.filter((m) => owner(m, ['a', 'b']) === 'b').slice(0, 3)
  const toA = fresh.filter((m) => owner(m, ['a', 'b']) === 'a').slice(0, 2)
  const newcomers = await Promise.all([...toB, ...toA].map(async (m) => await player(gateway, `${m}-p`, m)))
  for (const m of toB) await call(b.calls, `open ${m}-p`)
  for (const m of toA) await call(a.calls, `open ${m}-p`)
  t.pass('new matches reach the member HRW picks, the joined one included')

  const both = await listing(gateway)
  t.equal(both.state, 'up')
  t.match(member(both, 'a'), { state: 'up', lease: false, weight: 1, keys: live.length + toA.length, clients: live.length + toA.length }, 'a: from the config, its keys and clients')
  t.match(member(both, 'b'), { state: 'up', lease: true, weight: 1, keys: toB.length, clients: toB.length, url: b.url }, 'b: leased, its keys and clients')

  // the SDK renews every leaseMs / 3: past two leases it is still there
  await new Promise((resolve) => setTimeout(resolve, 3200))
  t.equal(member(await listing(gateway), 'b')?.state, 'up', 'renewed, the lease has not run out')
  b.sdk.drain()
  await listed(gateway, (l) => member(l, 'b')?.state === 'draining', 'b draining')
  t.pass('a draining member is listed as draining')

  await registration.stop()
  for (const m of toB) await call(a.calls, `open ${m}-p`)
  t.notOk(member(await listing(gateway), 'b'), 'b is gone from the pool')
  for (const [i, m] of toB.entries()) newcomers[i].ws.send(JSON.stringify({ after: m }))
  for (const m of toB) t.equal(await call(a.calls, `message ${m}-p`), `message ${m}-p {"after":"${m}"}`, `${m}: its player goes on, on a`)
  t.ok([...live, ...newcomers].every((c) => !c.dropped()), 'no player was disconnected')
  const after = await listing(gateway)
  t.match(member(after, 'a'), { keys: live.length + toA.length + toB.length, clients: live.length + toA.length + toB.length }, 'a holds every match now')
  t.equal(await gateway.metric('gatehouse_pool_rehomed_clients_total'), toB.length, 'the re-homed players are counted')
  for (const c of [...live, ...newcomers]) c.ws.close()
})

t.test('a lease not renewed runs out: the member leaves and its matches move, players stay connected', async (t) => {
  const a = await service(t)
  const b = await service(t)
  const gateway = await startGateway(t, adminConfig(a.url, { leaseMs: 1000 }))
  await listed(gateway, (l) => member(l, 'a')?.state === 'up', 'a up')
  // registered once, by hand, and never renewed
  const put = await adminCall(gateway, 'PUT', '/_gatehouse/pools/game/members/b', { body: { url: b.url } })
  t.same(put, { status: 201, body: { leaseMs: 1000 } }, 'a new registration: 201 and the lease')
  await listed(gateway, (l) => member(l, 'b')?.state === 'up', 'b up')
  const match = Array.from({ length: 30 }, (_, i) => `m-${i}`).find((m) => owner(m, ['a', 'b']) === 'b') as string
  const p = await player(gateway, 'p', match)
  await call(b.calls, 'open p')
  const expired = await gateway.logged(/lease expired/, 15000)
  t.equal(expired.member, 'b', 'the expiry is logged with the member')
  t.equal(await call(a.calls, 'open p'), `open p {"matchId":"${match}"}`, 'a gets the open of the player of the expired member')
  p.ws.send(JSON.stringify({ go: 'on' }))
  t.equal(await call(a.calls, 'message p'), 'message p {"go":"on"}', 'and its messages')
  t.notOk(p.dropped(), 'the player stayed connected')
  t.notOk(member(await listing(gateway), 'b'), 'b is gone from the pool')
  p.ws.close()
})

t.test('the admin routes refuse bad requests: 401, 400 by field, 404, 409, the member cap, upgrades; the token is never logged', async (t) => {
  const a = await service(t)
  const config = adminConfig(a.url, { maxMembers: 2 }, {}, { log: { level: 'trace' } })
  ;(config.endpoints as unknown[]).push({ name: 'lobby', path: '/lobby', resumeGraceMs: 0, backend: { url: 'ws://127.0.0.1:9/lobby' } })
  const gateway = await startGateway(t, config)
  const path = '/_gatehouse/pools/game/members/b'
  const body = { url: 'ws://127.0.0.1:9/b', weight: 2 }

  for (const [what, token] of [['no token', null], ['a wrong token', WRONG_TOKEN], ['a shorter token', 'short'], ['the token with more', `${ADMIN_TOKEN}x`]] as const) {
    for (const method of ['PUT', 'DELETE', 'GET']) {
      const res = await adminCall(gateway, method, method === 'GET' ? '/_gatehouse/pools/game' : path, { token, body: method === 'PUT' ? body : undefined })
      t.equal(res.status, 401, `${method} with ${what}: 401`)
      t.equal(res.body?.code, 'GW_ERR_ADMIN_UNAUTHORIZED')
    }
  }
  const basic = await fetch(`http://127.0.0.1:${gateway.port}/_gatehouse/pools/game`, { headers: { authorization: `Basic ${ADMIN_TOKEN}` } })
  t.equal(basic.status, 401, 'another scheme: 401')
  t.equal((await adminCall(gateway, 'GET', '/_gatehouse/pools/nope', { token: null })).status, 401, 'without the token, an unknown endpoint is 401 too: nothing to probe')

  const bad: Array<[unknown, RegExp]> = [
    [{ url: 'http://127.0.0.1:9/b' }, /body\.url: must match pattern/],
    [{ url: 'ws://exa mple/b' }, /body\.url: is not a valid URL/],
    [{ url: 'ws://127.0.0.1:9/b#x' }, /body\.url: must not have a #fragment/],
    [{ url: 'ws://127.0.0.1:9/b', weight: 0 }, /body\.weight: must be > 0/],
    [{ url: 'ws://127.0.0.1:9/b', weight: -1 }, /body\.weight: must be > 0/],
    [{ url: 'ws://127.0.0.1:9/b', weight: '2' }, /body\.weight: must be number/],
    [{ url: 'ws://127.0.0.1:9/b', extra: 1 }, /body\.extra: is not a known field/],
    [{ weight: 1 }, /body\.url: is required/]
  ]
  for (const [payload, message] of bad) {
    const res = await adminCall(gateway, 'PUT', path, { body: payload })
    t.equal(res.status, 400, `${JSON.stringify(payload)}: 400`)
    t.equal(res.body.code, 'GW_ERR_BAD_REGISTRATION')
    t.match(res.body.message, message, 'names the field')
  }

  t.equal((await adminCall(gateway, 'PUT', '/_gatehouse/pools/nope/members/b', { body })).status, 404, 'unknown endpoint: 404')
  t.equal((await adminCall(gateway, 'GET', '/_gatehouse/pools/nope')).body.code, 'GW_ERR_NO_POOL')
  t.equal((await adminCall(gateway, 'PUT', '/_gatehouse/pools/lobby/members/b', { body })).status, 404, 'an endpoint without a pool (backend.url): 404')

  const conflict = async (id: string, url: string, what: string): Promise<void> => {
    const res = await adminCall(gateway, 'PUT', `/_gatehouse/pools/game/members/${id}`, { body: { url } })
    t.equal(res.status, 409, `${what}: 409`)
    t.equal(res.body.code, 'GW_ERR_MEMBER_CONFLICT')
  }
  await conflict('a', 'ws://127.0.0.1:9/other', 'the id of a member from the config')
  await conflict('x', a.url, 'the url of a member from the config')
  await conflict('x', `${a.url}/`, 'the same url written otherwise')
  t.equal((await adminCall(gateway, 'PUT', path, { body })).status, 201, 'b registers')
  t.same(await adminCall(gateway, 'PUT', path, { body }), { status: 200, body: { leaseMs: 15000 } }, 'the same PUT renews: 200')
  await conflict('b', 'ws://127.0.0.1:9/elsewhere', 'another url for a registered member')
  await conflict('c', body.url, 'the url of another registered member')
  t.equal((await adminCall(gateway, 'DELETE', '/_gatehouse/pools/game/members/a')).status, 409, 'DELETE of a member from the config: 409')
  t.equal((await adminCall(gateway, 'DELETE', '/_gatehouse/pools/game/members/zz')).status, 404, 'DELETE of an unknown member: 404')

  t.equal((await adminCall(gateway, 'PUT', '/_gatehouse/pools/game/members/c', { body: { url: 'ws://127.0.0.1:9/c' } })).status, 201, 'c registers: the second of admin.maxMembers 2')
  const full = await adminCall(gateway, 'PUT', '/_gatehouse/pools/game/members/d', { body: { url: 'ws://127.0.0.1:9/d' } })
  t.equal(full.status, 409, 'a third: refused')
  t.equal(full.body.code, 'GW_ERR_POOL_FULL')
  t.match(full.body.message, /admin\.maxMembers \(2\)/)
  t.equal((await adminCall(gateway, 'PUT', path, { body })).status, 200, 'renewing a member within the cap is still fine')
  const l = await listing(gateway)
  t.same(l.members.map((m) => m.id), ['a', 'b', 'c'], 'the listing: the config, then run-time members in order')
  t.match(member(l, 'b'), { weight: 2, lease: true, keys: 0, clients: 0 })
  t.ok(['down', 'out'].includes(member(l, 'c')?.state as string), 'a member that cannot be reached is listed down (or out)')
  t.equal((await adminCall(gateway, 'DELETE', '/_gatehouse/pools/game/members/c')).status, 204, 'DELETE: 204')
  t.equal((await adminCall(gateway, 'PUT', '/_gatehouse/pools/game/members/d', { body: { url: 'ws://127.0.0.1:9/d' } })).status, 201, 'room again for a new member')

  const upgrade = await refusal(gateway.url('/_gatehouse/pools/game'), { token: ADMIN_TOKEN })
  t.notOk(upgrade.opened, 'an upgrade on the listing never becomes a WebSocket')
  t.equal(upgrade.status, 400)
  t.match(upgrade.body, /GW_ERR_UPGRADE_REFUSED/)
  const onMember = await refusal(gateway.url(path), { token: ADMIN_TOKEN })
  t.notOk(onMember.opened, 'nor one on a member (no GET route there: 404)')
  t.equal(onMember.status, 404)

  t.equal(gateway.app.log.level, 'trace', 'the gateway logs at trace')
  t.ok(gateway.logs.some((line) => line.includes('"url":"/_gatehouse/pools/game/members/b"')), 'the admin requests were logged')
  t.notOk(gateway.logs.some((line) => line.includes(ADMIN_TOKEN) || line.includes(WRONG_TOKEN)), 'no log line holds the admin token, or a wrong one')
})

t.test('bad input: members registered and deleted over and over leave no metric series behind', async (t) => {
  const a = await service(t)
  const gateway = await startGateway(t, adminConfig(a.url, { maxMembers: 2 }))
  for (let i = 0; i < 20; i++) {
    const path = `/_gatehouse/pools/game/members/pod-${i}`
    t.equal((await adminCall(gateway, 'PUT', path, { body: { url: `ws://127.0.0.1:9/pod-${i}` } })).status, 201, `pod-${i} registers`)
    t.equal((await adminCall(gateway, 'DELETE', path)).status, 204, `pod-${i} leaves`)
  }
  const series = (await gateway.get('/metrics')).body.split('\n').filter((line) => !line.startsWith('#') && line.includes('member="pod-'))
  t.same(series, [], 'no series names a member that left: a leaked admin token cannot grow /metrics without bound')
})

t.test('the SDK logs a refused registration without the token, and retries', async (t) => {
  const a = await service(t)
  const gateway = await startGateway(t, adminConfig(a.url))
  const logger = captureLogger()
  const b = new GatehouseBackend({ token: BACKEND_TOKEN, logger })
  const { url } = await b.listen()
  t.teardown(async () => await b.stop())
  b.register({ gateway: `http://127.0.0.1:${gateway.port}`, endpoint: 'game', id: 'b', url, adminToken: WRONG_TOKEN })
  for (let i = 1; i <= 3; i++) {
    const line = await logger.lines.next((l) => l.includes('pool registration refused'), 15000, `refusal ${i}`)
    t.match(line, /"status":401,"code":"GW_ERR_ADMIN_UNAUTHORIZED"/, `attempt ${i}: logged with the status and code`)
  }
  t.notOk(logger.lines.all.some((l) => l.includes(WRONG_TOKEN)), 'the token is in no log line')
  t.notOk(member(await listing(gateway), 'b'), 'nothing was registered')
})

t.test('without admin, the admin routes do not exist: 404', async (t) => {
  const a = await service(t)
  const config = adminConfig(a.url)
  delete config.admin
  const gateway = await startGateway(t, config)
  for (const [method, path] of [['GET', '/_gatehouse/pools/game'], ['PUT', '/_gatehouse/pools/game/members/b'], ['DELETE', '/_gatehouse/pools/game/members/b']]) {
    const res = await adminCall(gateway, method, path, { body: method === 'PUT' ? { url: 'ws://127.0.0.1:9/b' } : undefined })
    t.equal(res.status, 404, `${method} ${path}: 404`)
  }
})

t.test('admin config: named by field when wrong; with cluster.redis too', async (t) => {
  const base = adminConfig('ws://127.0.0.1:9/a')
  const problems = (config: Record<string, unknown>): string => {
    try {
      parseConfig(config)
    } catch (err) {
      if (err instanceof ConfigError) return err.problems.join('\n')
      throw err
    }
    return ''
  }
  t.match(problems({ ...base, admin: { token: 'short' } }), /admin\.token: must NOT have fewer than 16 characters/)
  t.match(problems({ ...base, admin: { token: ADMIN_TOKEN, maxMembers: 0 } }), /admin\.maxMembers: must be >= 1/)
  t.match(problems({ ...base, admin: { token: ADMIN_TOKEN, leaseMs: 10 } }), /admin\.leaseMs: must be >= 300/)
  t.match(problems({ ...base, admin: { token: ADMIN_TOKEN, extra: 1 } }), /admin\.extra: is not a known field/)
  t.equal(problems({ ...base, cluster: { redis: 'redis://127.0.0.1:6379' } }), '', 'admin with cluster.redis is taken (docs/pools.md, "Clusters")')
  const parsed = parseConfig(base)
  t.match(parsed.admin, { leaseMs: 15000, maxMembers: 64 }, 'defaults')
})
