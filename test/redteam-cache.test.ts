/**
 * Red team of the gateway's verified-token cache (`auth.verifyCacheSize`,
 * docs/configuration.md), of the gauges read at scrape (gatehouse_connections,
 * gatehouse_pool_member_keys/clients) and of the one-user send path and the
 * ASCII fast path of binary user ids (protocol/PROTOCOL.md §2a). Real gateway,
 * real sockets; every attack that held is kept as a test.
 */
import t from 'tap'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { generateKeyPairSync, type JsonWebKey } from 'node:crypto'
import { createSigner } from 'fast-jwt'
import { gatewayWithBackends } from './helpers/setup.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { backendFor } from './helpers/backend.js'
import { connect, refusal } from './helpers/client.js'
import { AUDIENCE, ISSUER, SECRET, signWith, tokenFor } from './helpers/tokens.js'
import { handBackend, record, textSend, TEXT_SEND } from './helpers/records.js'

type Teardown = { teardown (fn: () => unknown): void }

const now = (): number => Math.floor(Date.now() / 1000)
const OTHER_SECRET = 'another-secret-entirely-0000000000000'

const lobby = async (t: Teardown, auth: Record<string, unknown>) =>
  await gatewayWithBackends(t, [{ name: 'lobby', path: '/lobby' }], { auth: { secret: SECRET, algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE, ...auth } })

/** Resolves once the wall clock has passed `epochMs`: token expiry is a matter of the clock, not of an event. */
async function clockPast (epochMs: number): Promise<void> {
  while (Date.now() < epochMs) await new Promise((resolve) => setTimeout(resolve, Math.min(100, epochMs - Date.now() + 1)))
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

/** Polls /metrics until `done` holds: the gauges follow socket closes the test cannot await on the gateway's side. */
async function metricSettles (gateway: { metric (name: string, labels?: Record<string, string>): Promise<number> }, name: string, labels: Record<string, string>, wanted: number): Promise<number> {
  let value = NaN
  for (let i = 0; i < 400; i++) {
    value = await gateway.metric(name, labels)
    if (value === wanted) return value
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return value
}

t.test('variants of a cached token (signature swapped, alg changed or none, altered payload, padding, case, whitespace) get what an uncached gateway gives them: 401', async (t) => {
  const cached = await lobby(t, { verifyCacheSize: 10000 })
  const uncached = await lobby(t, { verifyCacheSize: 0 })
  const claims = { sub: 'ada', iss: ISSUER, aud: AUDIENCE, exp: now() + 600 }
  const good = signWith(SECRET, 'HS256', claims)
  await connect(cached.gateway.url('/lobby'), { token: good })
  t.equal((await cached.backends.lobby.next('open', 'ada')).user, 'ada', 'the genuine token is accepted, and so cached')
  const [header, payload, signature] = good.split('.')
  const variants: Record<string, string> = {
    'another key': signWith(OTHER_SECRET, 'HS256', claims),
    'HS384 under the same secret': signWith(SECRET, 'HS384', claims),
    'alg none, the payload kept': `${b64url({ alg: 'none', typ: 'JWT' })}.${payload}.`,
    'alg none with the old signature': `${b64url({ alg: 'none', typ: 'JWT' })}.${payload}.${signature}`,
    'another payload, the old signature': `${header}.${b64url({ ...claims, sub: 'mallory' })}.${signature}`,
    'signature padded with =': `${good}=`,
    'signature upper-cased': `${header}.${payload}.${signature.toUpperCase()}`,
    'a trailing dot': `${good}.`,
    'signature truncated': good.slice(0, -1),
    'header re-encoded with a space': `${Buffer.from(` ${Buffer.from(header, 'base64url').toString()}`).toString('base64url')}.${payload}.${signature}`
  }
  for (const [what, token] of Object.entries(variants)) {
    t.not(token, good, `${what}: not the cached string`)
    const withCache = await refusal(cached.gateway.url('/lobby'), { token })
    const without = await refusal(uncached.gateway.url('/lobby'), { token })
    t.equal(withCache.status, without.status, `${what}: the cache changes nothing (${without.status})`)
    t.equal(withCache.status, 401, `${what}: 401`)
    t.equal(JSON.parse(withCache.body).code, 'GW_ERR_TOKEN_INVALID', `${what}: as invalid`)
  }
  t.equal(await cached.gateway.metric('gatehouse_connections', { endpoint: 'lobby' }), 1, 'only the genuine one got in')
})

t.test('auth.issuers: a token cached for one issuer lends nothing to the same payload under another issuer or key', async (t) => {
  const { backends, gateway } = await gatewayWithBackends(t, [{ name: 'lobby', path: '/lobby' }], {
    auth: {
      verifyCacheSize: 10000,
      issuers: [
        { issuer: 'https://a.test', secret: SECRET, algorithms: ['HS256'], audience: AUDIENCE },
        { issuer: 'https://b.test', secret: OTHER_SECRET, algorithms: ['HS256'], audience: 'other' }
      ]
    }
  })
  const claimsA = { sub: 'ada', iss: 'https://a.test', aud: AUDIENCE, exp: now() + 600 }
  const good = signWith(SECRET, 'HS256', claimsA)
  for (const round of [1, 2]) {
    const client = await connect(gateway.url('/lobby'), { token: good })
    t.equal((await backends.lobby.next('open', 'ada')).user, 'ada', `issuer a's token accepted (${round}: verified, then cached)`)
    client.ws.close()
    await backends.lobby.next('close', 'ada')
  }
  const [, , signature] = good.split('.')
  const attempts: Record<string, string> = {
    "a's claims signed with b's key": signWith(OTHER_SECRET, 'HS256', claimsA),
    "iss b, signed with a's key": signWith(SECRET, 'HS256', { ...claimsA, iss: 'https://b.test', aud: 'other' }),
    "iss b with a's cached signature": `${good.split('.')[0]}.${b64url({ ...claimsA, iss: 'https://b.test', aud: 'other' })}.${signature}`,
    "iss b, b's key, but a's audience": signWith(OTHER_SECRET, 'HS256', { ...claimsA, iss: 'https://b.test' })
  }
  for (const [what, token] of Object.entries(attempts)) {
    const refused = await refusal(gateway.url('/lobby'), { token })
    t.equal(refused.status, 401, `${what}: 401`)
    t.equal(JSON.parse(refused.body).code, 'GW_ERR_TOKEN_INVALID', `${what}: as invalid`)
  }
  const expiring = signWith(OTHER_SECRET, 'HS256', { sub: 'bo', iss: 'https://b.test', aud: 'other', exp: now() + 2 })
  await connect(gateway.url('/lobby'), { token: expiring })
  t.equal((await backends.lobby.next('open', 'bo')).user, 'bo', "b's own token is accepted, and cached by b")
  await clockPast((JSON.parse(Buffer.from(expiring.split('.')[1], 'base64url').toString()) as { exp: number }).exp * 1000 + 1100)
  const late = await refusal(gateway.url('/lobby'), { token: expiring })
  t.equal(late.status, 401, "b's cached token past its exp: 401")
  t.equal(JSON.parse(late.body).code, 'GW_ERR_TOKEN_EXPIRED', 'as expired, though it was cached')
})

t.test('one claims object serves every session of a cached token: each is opened with the claims as signed, claims swapped under the cached signature are refused', async (t) => {
  const { backends, gateway } = await gatewayWithBackends(t, [{ name: 'game', path: '/game', duplicate: 'allow' }], {
    auth: { secret: SECRET, algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE, verifyCacheSize: 10000 }
  })
  const token = tokenFor('ada', { team: { name: 'red', ranks: [1, 2] } })
  const first = await connect(gateway.url('/game'), { token })
  const opened = await backends.game.next('open', 'ada') as unknown as { claims: Record<string, unknown> }
  t.same(opened.claims.team, { name: 'red', ranks: [1, 2] }, 'the first session carries the nested claims')
  const second = await connect(gateway.url('/game'), { token })
  const again = await backends.game.next('open', 'ada')
  t.same(again.claims, opened.claims, 'the second session (a cache hit) carries the same claims')
  backends.game.send({ action: 'send', user: 'ada', data: 'both' })
  t.equal(await first.next(), 'both', 'the first session is live')
  t.equal(await second.next(), 'both', 'the second session is live')
  const forged = `${token.split('.')[0]}.${b64url({ ...opened.claims, team: { name: 'blue' } })}.${token.split('.')[2]}`
  t.equal((await refusal(gateway.url('/game'), { token: forged })).status, 401, 'claims swapped under the cached signature: 401')
  const third = await connect(gateway.url('/game'), { token })
  t.same(((await backends.game.next('open', 'ada')) as unknown as { claims: Record<string, unknown> }).claims.team, { name: 'red', ranks: [1, 2] }, 'a third session is opened with the claims unchanged')
  third.ws.close()
})

interface RsaKey { kid: string, jwk: JsonWebKey, privatePem: string }

function rsaKey (kid: string): RsaKey {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return { kid, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }, privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }
}

/** A JWKS endpoint serving `state.keys`; `served` counts its answers, and `more(n)` resolves once it has given n more. */
async function jwksServer (t: Teardown, keys: RsaKey[]) {
  const state = { keys, served: 0 }
  const waiting: Array<{ until: number, resolve: () => void }> = []
  const sockets = new Set<Socket>()
  const server = createServer((_req, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys.map((k) => k.jwk) }))
    state.served++
    for (const w of waiting.filter((w) => state.served >= w.until)) {
      waiting.splice(waiting.indexOf(w), 1)
      w.resolve()
    }
  })
  server.on('connection', (socket) => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  const more = async (n: number): Promise<void> => await new Promise((resolve) => waiting.push({ until: state.served + n, resolve }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`, state, more }
}

const rsaToken = (key: RsaKey, user: string, kid = key.kid): string =>
  createSigner({ key: key.privatePem, algorithm: 'RS256', kid })({ sub: user, iss: ISSUER, aud: AUDIENCE, exp: now() + 600 })

t.test('JWKS: a cached token stops serving once its key leaves the set, or its kid names another key', async (t) => {
  const k1 = rsaKey('k1')
  const k2 = rsaKey('k2')
  const jwks = await jwksServer(t, [k1, k2])
  const { backends, gateway } = await gatewayWithBackends(t, [{ name: 'lobby', path: '/lobby' }], {
    auth: { jwksUrl: jwks.url, algorithms: ['RS256'], issuer: ISSUER, audience: AUDIENCE, verifyCacheSize: 10000, jwksRefreshMs: 1000, jwksCooldownMs: 100 }
  })
  const one = rsaToken(k1, 'ada')
  const two = rsaToken(k2, 'bob')
  for (const [token, user] of [[one, 'ada'], [two, 'bob'], [one, 'ada'], [two, 'bob']]) {
    const client = await connect(gateway.url('/lobby'), { token })
    t.equal((await backends.lobby.next('open', user)).user, user, `${user} accepted (verified, then cached)`)
    client.ws.close()
    await backends.lobby.next('close', user)
  }
  const relabelled = rsaToken(k1, 'ada', 'k2')
  const refusedKid = await refusal(gateway.url('/lobby'), { token: relabelled })
  t.equal(refusedKid.status, 401, "k1's signature under kid k2: 401")

  // k1 rotated out; k2's kid now names a new key: both cached tokens must go
  const k2b = rsaKey('k2')
  jwks.state.keys = [k2b]
  // the second answer after the change was fetched after the first was applied
  await jwks.more(2)
  const gone = await refusal(gateway.url('/lobby'), { token: one })
  t.equal(gone.status, 401, 'a cached token of a key rotated out: 401')
  t.equal(JSON.parse(gone.body).code, 'GW_ERR_TOKEN_INVALID', 'as invalid')
  const replaced = await refusal(gateway.url('/lobby'), { token: two })
  t.equal(replaced.status, 401, 'a cached token whose kid now names another key: 401')
  const fresh = await connect(gateway.url('/lobby'), { token: rsaToken(k2b, 'cy') })
  t.equal((await backends.lobby.next('open', 'cy')).user, 'cy', "the new key's tokens are accepted")
  fresh.ws.close()
})

t.test('JWKS: a refetch of an unchanged set keeps the tokens its keys verified, made-up kids and all', async (t) => {
  const k1 = rsaKey('k1')
  const jwks = await jwksServer(t, [k1])
  const { backends, gateway } = await gatewayWithBackends(t, [{ name: 'lobby', path: '/lobby' }], {
    auth: { jwksUrl: jwks.url, algorithms: ['RS256'], issuer: ISSUER, audience: AUDIENCE, verifyCacheSize: 10000, jwksRefreshMs: 1000, jwksCooldownMs: 100 }
  })
  const token = rsaToken(k1, 'ada')
  const visit = async (round: string): Promise<void> => {
    const client = await connect(gateway.url('/lobby'), { token })
    t.equal((await backends.lobby.next('open', 'ada')).user, 'ada', `ada accepted (${round})`)
    client.ws.close()
    await backends.lobby.next('close', 'ada')
  }
  await visit('first')
  t.equal(await gateway.metric('gatehouse_token_cache_total', { result: 'miss' }), 1, 'the first visit is verified')
  // a made-up kid refetches the set (past the cooldown), and the background refresh fetches it again: new key objects, same key
  const refused = await refusal(gateway.url('/lobby'), { token: rsaToken(k1, 'ada', 'no-such-kid') })
  t.equal(refused.status, 401, 'a made-up kid: 401')
  await jwks.more(2)
  await visit('after two fetches of the set')
  t.equal(await gateway.metric('gatehouse_token_cache_total', { result: 'hit' }), 1, 'the token is still remembered: a hit')
  t.equal(await gateway.metric('gatehouse_token_cache_total', { result: 'miss' }), 1, 'and not verified again')
})

t.test('gatehouse_connections at scrape: allow, replace, reject, held sessions and bad tokens', async (t) => {
  const { backends, gateway } = await gatewayWithBackends(t, [
    { name: 'many', path: '/many', duplicate: 'allow' },
    { name: 'one', path: '/one', duplicate: 'replace' },
    { name: 'only', path: '/only', duplicate: 'reject' },
    { name: 'held', path: '/held', resumeGraceMs: 1500 }
  ])
  const count = async (endpoint: string): Promise<number> => await gateway.metric('gatehouse_connections', { endpoint })
  const token = tokenFor('ada')
  const a1 = await connect(gateway.url('/many'), { token })
  const a2 = await connect(gateway.url('/many'), { token })
  await backends.many.next('open', 'ada')
  await backends.many.next('open', 'ada')
  t.equal(await count('many'), 2, 'allow: two sessions of one user are two connections')
  a1.ws.close()
  t.equal(await metricSettles(gateway, 'gatehouse_connections', { endpoint: 'many' }, 1), 1, 'allow: one left, one counted')

  const r1 = await connect(gateway.url('/one'), { token })
  await backends.one.next('open', 'ada')
  const r2 = await connect(gateway.url('/one'), { token })
  t.equal((await r1.closed).code, 4409, 'replace: the first is replaced')
  t.equal(await metricSettles(gateway, 'gatehouse_connections', { endpoint: 'one' }, 1), 1, 'replace: one connection')

  await connect(gateway.url('/only'), { token })
  await backends.only.next('open', 'ada')
  t.equal((await refusal(gateway.url('/only'), { token })).status, 409, 'reject: the second is refused')
  t.equal((await refusal(gateway.url('/only'), { token: 'not.a.token' })).status, 401, 'a malformed token: 401')
  t.equal(await count('only'), 1, 'reject: refusals are not counted')

  const h = await connect(gateway.url('/held'), { token })
  await backends.held.next('open', 'ada')
  h.ws.terminate()
  await gateway.logged(/holding its session for a resume/)
  t.equal(await count('held'), 1, 'a held session is still counted')
  await backends.held.next('close', 'ada')
  t.equal(await metricSettles(gateway, 'gatehouse_connections', { endpoint: 'held' }, 0), 0, 'held past resumeGraceMs: gone')
  t.equal(await count('many'), 1, "other endpoints' counts are their own (many)")
  t.equal(await count('one'), 1, "other endpoints' counts are their own (one)")
  a2.ws.close()
  r2.ws.close()
  t.equal(await metricSettles(gateway, 'gatehouse_connections', { endpoint: 'many' }, 0), 0, 'all closed: 0')
})

t.test('pool member gauges at scrape: a member that leaves through the admin API leaves no series; the scrape never fails', async (t) => {
  const ADMIN = 'admin-token-for-tests-0123456789'
  const a = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{
    name: 'game',
    path: '/game/:matchId',
    backend: { urls: [{ id: 'a', url: a.url }], route: 'params.matchId', lingerMs: 0, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 }
  }], { admin: { token: ADMIN } }))
  await a.next('hello')
  const admin = async (method: string, body?: unknown) => await fetch(`http://127.0.0.1:${gateway.port}/_gatehouse/pools/game/members/b`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  await connect(gateway.url('/game/m1'), { token: tokenFor('ada') })
  await a.next('open', 'ada')
  t.equal(await gateway.metric('gatehouse_pool_member_clients', { member: 'a' }), 1, "a's client is counted")
  t.equal(await gateway.metric('gatehouse_pool_member_keys', { member: 'a' }), 1, "a's key is counted")
  t.equal((await admin('PUT', { url: 'ws://127.0.0.1:9/b' })).status, 201, 'b (dead) joins')
  const joined = await gateway.get('/metrics')
  t.equal(joined.status, 200, 'the scrape answers')
  t.match(joined.body, /gatehouse_pool_member_keys\{[^}]*member="b"[^}]*\} 0/, 'b shows with no keys')
  t.equal((await admin('DELETE')).status, 204, 'b leaves')
  const left = await gateway.get('/metrics')
  t.notMatch(left.body, /gatehouse_pool_member_(keys|clients)\{[^}]*member="b"/, 'no load series for b lingers')
  t.match(left.body, /gatehouse_pool_member_clients\{[^}]*member="a"[^}]*\} 1/, "a's series stays")
})

t.test('binary SEND records: non-ASCII user ids reach their user and no Latin-1 look-alike; invalid UTF-8 is refused and counted', async (t) => {
  const backend = await handBackend(t)
  const gateway = await startGateway(t, testConfig([{ name: 'game', path: '/game', backend: { url: backend.url, encoding: 'binary', minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }]))
  await backend.next('hello')
  const users = ['é', 'Ã©', '用户', '\uFFFD', 'plain']
  const clients = new Map<string, Awaited<ReturnType<typeof connect>>>()
  for (const user of users) {
    clients.set(user, await connect(gateway.url('/game'), { token: tokenFor(user) }))
    await backend.next('open', user)
  }
  backend.send(textSend(['é'], 'to e-acute'))
  backend.send(textSend(['用户'], 'to the CJK user'))
  backend.send(textSend(['é', 'plain'], 'to two'))
  t.equal(await clients.get('é')?.next(), 'to e-acute', 'é gets its own (UTF-8 bytes C3 A9)')
  t.equal(await clients.get('用户')?.next(), 'to the CJK user', 'a three-byte user id is read as UTF-8')
  t.equal(await clients.get('é')?.next(), 'to two', 'é, named among two')
  t.equal(await clients.get('plain')?.next(), 'to two', 'plain, named among two')
  // invalid UTF-8: a lone lead byte, and a byte that is never UTF-8; a hand-made SEND record to one user
  for (const bad of [Buffer.from([0xc3]), Buffer.from([0xff]), Buffer.from([0x70, 0x6c, 0x61, 0x69, 0x6e, 0x80])]) {
    const length = Buffer.alloc(2)
    length.writeUInt16BE(bad.length)
    backend.send(record(TEXT_SEND, Buffer.concat([Buffer.from([1, 0, 0, 0, 1]), length, bad, Buffer.from('never')])))
  }
  backend.send(textSend(['Ã©', '\uFFFD', 'plain'], 'marker'))
  t.equal(await clients.get('Ã©')?.next(), 'marker', 'the Latin-1 look-alike got nothing before the marker')
  t.equal(await clients.get('\uFFFD')?.next(), 'marker', 'U+FFFD got nothing from the invalid bytes')
  t.equal(await clients.get('plain')?.next(), 'marker', '"plain" got nothing from "plain" + 0x80')
  t.equal(await gateway.metric('gatehouse_backend_frame_errors_total', { endpoint: 'game' }) >= 3, true, 'the invalid records are counted')
  t.ok(gateway.logs.some((l) => /not UTF-8/.test(l)), 'and logged as not UTF-8')
})

t.test('allow, several sessions of one user, the oldest too slow: it is closed 1013 mid-send and every other session still gets every message', async (t) => {
  const { backends, gateway } = await gatewayWithBackends(t, [{ name: 'game', path: '/game', duplicate: 'allow', limits: { maxBufferedBytes: 1024 * 1024 } }])
  const token = tokenFor('ada')
  const slow = await connect(gateway.url('/game'), { token })
  const slowConn = (await backends.game.next('open', 'ada')).conn
  t.ok(slowConn, 'under allow each session has its own conn')
  const others = []
  for (let i = 0; i < 3; i++) {
    others.push(await connect(gateway.url('/game'), { token }))
    await backends.game.next('open', 'ada')
  }
  slow.ws.pause()
  const chunk = 'z'.repeat(32 * 1024)
  let closed = false
  void backends.game.next('close', 'ada', 120000).then(() => { closed = true })
  // paced: the readers keep up (they share this process with the gateway), the paused one falls behind until it is closed
  let sent = 0
  for (let round = 0; !closed && round < 2000; round++) {
    backends.game.send(Array.from({ length: 4 }, () => ({ action: 'send', user: 'ada', data: `${sent++}:${chunk}` })))
    for (const other of others) for (let i = 0; i < 4; i++) await other.next(30000)
  }
  const close = backends.game.events.all.find((e) => e.event === 'close')
  t.equal(close?.code, 1013, 'a session is closed with 1013')
  t.equal(close?.conn, slowConn, 'the paused one, the oldest in the list, is the one closed')
  backends.game.send({ action: 'send', user: 'ada', data: 'end' })
  for (const [n, other] of others.entries()) {
    const seen = other.messages.all.map((m) => String(m)).filter((m) => m !== 'end').map((m) => Number(m.slice(0, m.indexOf(':'))))
    t.same(seen, Array.from({ length: sent }, (_, i) => i), `session ${n + 2} got all ${sent} messages, in order, the round of the close included`)
    t.equal(await other.next(30000), 'end', `session ${n + 2} is still open after the close`)
  }
  t.ok(await gateway.metric('gatehouse_dropped_actions_total', { reason: 'slow_consumer' }) > 0, 'the slow one is counted')
  slow.ws.terminate()
})

t.test('gatehouse_connections through a refresh (4410) and a resume: one session, one connection, the refresh token cached or not', async (t) => {
  const { backends, gateway } = await gatewayWithBackends(t, [
    { name: 'game', path: '/game/:matchId', resumeGraceMs: 30000, link: { minReconnectDelayMs: 20, maxReconnectDelayMs: 200, refresh: true } }
  ], { auth: { secret: SECRET, algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE, verifyCacheSize: 10000 } })
  const count = async (): Promise<number> => await gateway.metric('gatehouse_connections', { endpoint: 'game' })
  const token = tokenFor('ada', { n: 1 })
  const first = await connect(gateway.url('/game/m1'), { token })
  await backends.game.next('open', 'ada')
  const fresh = tokenFor('ada', { n: 2 })
  const second = await connect(gateway.url('/game/m1?refresh=1'), { token: fresh })
  t.equal((await first.closed).code, 4410, 'the old socket is closed 4410')
  t.equal(((await backends.game.next('refresh', 'ada')).claims as Record<string, unknown>).n, 2, 'the refresh carries the new claims')
  t.equal(await count(), 1, 'after a refresh: one connection')
  second.ws.terminate()
  await gateway.logged(/holding its session for a resume/)
  t.equal(await count(), 1, 'held: still one')
  const third = await connect(gateway.url('/game/m1'), { token: fresh })
  third.ws.send('back')
  t.equal((await backends.game.next('message', 'ada')).data, 'back', 'resumed with the (cached) refresh token')
  t.equal(await count(), 1, 'after the resume: one')
  t.equal(backends.game.events.all.filter((e) => e.event === 'open').length, 1, 'the backend saw one open in all')
  third.ws.close()
  t.equal(await metricSettles(gateway, 'gatehouse_connections', { endpoint: 'game' }, 0), 0, 'closed: 0')
  t.equal((await refusal(gateway.url('/game/m1'), { token: `${fresh}x` })).status, 401, 'a mangled copy of the cached token: 401')
})
