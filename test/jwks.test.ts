/**
 * JWKS issuers (issue 14 item 1): keys fetched from a real HTTP JWKS server on
 * loopback, cached, refetched for an unknown kid at most once per cooldown,
 * refreshed in the background, kept while the server is down; `auth.issuers`
 * picked by `iss`. protocol/PROTOCOL.md §6 has the statuses.
 */
import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createConnection, type AddressInfo, type Socket } from 'node:net'
import { createPublicKey, generateKeyPairSync, randomUUID, type JsonWebKey } from 'node:crypto'
import { createSigner } from 'fast-jwt'
import { gatewayWithBackends } from './helpers/setup.js'
import { connect, refusal } from './helpers/client.js'
import { Inbox } from './helpers/waiter.js'
import { parseConfig, ConfigError } from '../src/config/load.js'

type Teardown = { teardown (fn: () => unknown): void }

const ISS = 'https://id.test'
const AUD = 'game'
const now = (): number => Math.floor(Date.now() / 1000)

interface SigningKey { kid: string, alg: string, jwk: JsonWebKey, privatePem: string }

function rsaKey (kid: string, alg = 'RS256'): SigningKey {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return { kid, alg, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' }, privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }
}

function ecKey (kid: string): SigningKey {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { kid, alg: 'ES256', jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' }, privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }
}

/** A token for `user` signed by `key`, its header naming `kid` (the key's own unless told). */
function token (key: SigningKey, user: string, claims: Record<string, unknown> = {}, kid = key.kid): string {
  const sign = createSigner({ key: key.privatePem, algorithm: key.alg as 'RS256', kid })
  return sign({ sub: user, iss: ISS, aud: AUD, exp: now() + 600, ...claims })
}

type Mode = 'ok' | 'not-json' | 'hang' | 'hold'

/** The identity service's JWKS endpoint: serves `keys` (or misbehaves), counts requests. */
async function jwksServer (t: Teardown, keys: SigningKey[]) {
  const state = { keys, mode: 'ok' as Mode, body: undefined as string | undefined }
  const requests = new Inbox<number>()
  let count = 0
  const sockets = new Set<Socket>()
  const held: ServerResponse[] = []
  const answer = (res: ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(state.body ?? JSON.stringify({ keys: state.keys.map((k) => k.jwk) }))
  }
  const server = createServer((_req: IncomingMessage, res: ServerResponse) => {
    requests.push(++count)
    if (state.mode === 'hang') return
    if (state.mode === 'hold') {
      held.push(res)
      return
    }
    if (state.mode === 'not-json') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html>maintenance</html>')
      return
    }
    answer(res)
  })
  server.on('connection', (socket) => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const stop = async (): Promise<void> => {
    if (!server.listening) return
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  }
  t.teardown(stop)
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
    state,
    get count () { return count },
    /** Resolves when the server has had `n` requests in all. */
    reached: (n: number) => requests.next((c) => c >= n, 15000, `JWKS request number ${n}`),
    stop,
    /** Answers the requests held in mode 'hold', and the next ones at once. */
    release () {
      state.mode = 'ok'
      for (const res of held.splice(0)) answer(res)
    }
  }
}

/** Waits out a cooldown: it is defined by time, so there is no event to await. */
const elapse = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const jwksAuth = (url: string, extra: Record<string, unknown> = {}) => ({
  auth: { jwksUrl: url, algorithms: ['RS256'], issuer: ISS, audience: AUD, jwksRefreshMs: 600000, jwksCooldownMs: 60000, ...extra }
})

async function lobby (t: Teardown, overrides: Record<string, unknown>) {
  const { gateway, backends } = await gatewayWithBackends(t, [{ name: 'lobby', path: '/lobby' }], overrides)
  return { gateway, backend: backends.lobby }
}

const codeOf = (result: { body: string }): string => JSON.parse(result.body).code

/** No log line may hold a token, a private key, or a public key's material. */
function assertNoSecretsLogged (t: { same (found: unknown, wanted: unknown, message: string): unknown }, logs: string[], secrets: string[]): void {
  const leaks = logs.filter((line) => secrets.some((secret) => line.includes(secret)))
  t.same(leaks, [], 'no log line holds a token or key material')
}

t.test('rotation: old tokens valid while their key is served, a new kid fetched once, a removed key refused', async (t) => {
  const k1 = rsaKey('k1')
  const k2 = rsaKey('k2')
  const server = await jwksServer(t, [k1])
  const cooldownMs = 400
  const { gateway, backend } = await lobby(t, jwksAuth(server.url, { jwksCooldownMs: cooldownMs }))
  await server.reached(1)
  const issued: string[] = []
  const use = (key: SigningKey, user: string): string => { const jwt = token(key, user); issued.push(jwt); return jwt }

  await connect(gateway.url('/lobby'), { token: use(k1, 'ann') })
  t.equal((await backend.next('open', 'ann')).user, 'ann', 'a token of the served key is admitted')
  t.equal(server.count, 1, 'the key came from the one fetch at start')

  server.state.keys = [k1, k2]
  await elapse(cooldownMs + 100)
  await connect(gateway.url('/lobby'), { token: use(k2, 'bob') })
  t.equal((await backend.next('open', 'bob')).user, 'bob', 'a token of the new key is admitted without a restart')
  t.equal(server.count, 2, 'the new kid was fetched once')
  await connect(gateway.url('/lobby'), { token: use(k2, 'cid') })
  await connect(gateway.url('/lobby'), { token: use(k1, 'dee') })
  t.equal((await backend.next('open', 'dee')).user, 'dee', 'a token of the old key is still admitted while the old key is served')
  t.equal(server.count, 2, 'known kids are not fetched again')

  // the old key rotated out: the next fetch (an unknown kid, after the cooldown) replaces the set
  server.state.keys = [k2]
  await elapse(cooldownMs + 100)
  const stranger = rsaKey('k3')
  t.equal((await refusal(gateway.url('/lobby'), { token: use(stranger, 'eve') })).status, 401, 'an unknown kid is refused with 401 once the set is fetched')
  t.equal(server.count, 3, 'that kid caused one fetch')
  const rotatedOut = await refusal(gateway.url('/lobby'), { token: use(k1, 'fay') })
  t.equal(rotatedOut.status, 401, 'a token signed by the rotated-out key is refused')
  t.equal(codeOf(rotatedOut), 'GW_ERR_TOKEN_INVALID', 'as an invalid token')
  await connect(gateway.url('/lobby'), { token: use(k2, 'gus') })
  t.equal((await backend.next('open', 'gus')).user, 'gus', 'the key still served still admits')
  assertNoSecretsLogged(t, gateway.logs, [...issued, k1.privatePem, String(k1.jwk.n), String(k2.jwk.n)])
})

t.test('the background refresh picks up a rotation and a removed key with no handshake fetching', async (t) => {
  const k1 = rsaKey('k1')
  const k2 = rsaKey('k2')
  const server = await jwksServer(t, [k1])
  const { gateway, backend } = await lobby(t, jwksAuth(server.url, { jwksRefreshMs: 1000 }))
  await server.reached(1)
  await connect(gateway.url('/lobby'), { token: token(k1, 'ann') })
  await backend.next('open', 'ann')
  server.state.keys = [k2]
  const before = server.count
  await server.reached(before + 1)
  // the refreshed set is applied when its answer is read; one more refresh makes sure
  await server.reached(before + 2)
  t.equal((await refusal(gateway.url('/lobby'), { token: token(k1, 'bob') })).status, 401, 'after the refresh, the removed key\'s tokens are refused')
  await connect(gateway.url('/lobby'), { token: token(k2, 'cid') })
  t.equal((await backend.next('open', 'cid')).user, 'cid', 'and the new key\'s are admitted')
})

t.test('a flood of unknown kids is not a flood of fetches', async (t) => {
  const k1 = rsaKey('k1')
  const server = await jwksServer(t, [k1])
  const cooldownMs = 1500
  const { gateway } = await lobby(t, jwksAuth(server.url, { jwksCooldownMs: cooldownMs }))
  await server.reached(1)
  const forger = rsaKey('forger')
  const flood = async (n: number): Promise<number[]> => await Promise.all(Array.from({ length: n }, async () =>
    (await refusal(gateway.url('/lobby'), { token: token(forger, 'mallory', {}, randomUUID()) })).status))

  const started = Date.now()
  const statuses = await flood(40)
  const elapsed = Date.now() - started
  t.same([...new Set(statuses)], [401], 'every random kid is refused with 401')
  // at most one fetch per cooldown: the one at start, plus one per cooldown that may have passed since
  t.ok(server.count <= 1 + Math.ceil(elapsed / cooldownMs), `${server.count} fetches for 40 random kids in ${elapsed} ms (cooldown ${cooldownMs} ms)`)

  await elapse(cooldownMs + 100)
  const countBefore = server.count
  const second = Date.now()
  await flood(40)
  const after = server.count - countBefore
  t.ok(after >= 1, 'after the cooldown an unknown kid is fetched again')
  t.ok(after <= Math.ceil((Date.now() - second) / cooldownMs), `but once per cooldown: ${after} fetches`)
  t.equal(await gateway.metric('gatehouse_handshake_failures_total', { reason: 'token_invalid' }), 80, 'each refusal is counted')
  t.equal(await gateway.metric('gatehouse_jwks_fetches_total', { jwks: server.url, result: 'ok' }), server.count, 'every fetch the server answered is counted ok, under the set\'s URL')
})

t.test('the JWKS server down: cached keys still admit, an uncached kid gets 503 at once', async (t) => {
  const k1 = rsaKey('k1')
  const k2 = rsaKey('k2')
  const server = await jwksServer(t, [k1])
  const cooldownMs = 300
  const { gateway, backend } = await lobby(t, jwksAuth(server.url, { jwksCooldownMs: cooldownMs, jwksRefreshMs: 1000 }))
  await server.reached(1)
  await connect(gateway.url('/lobby'), { token: token(k1, 'ann') })
  await backend.next('open', 'ann')
  await server.stop()
  await gateway.logged(/JWKS fetch failed/)
  await connect(gateway.url('/lobby'), { token: token(k1, 'bob') })
  t.equal((await backend.next('open', 'bob')).user, 'bob', 'after a failed refresh the cached key still admits')
  await elapse(cooldownMs + 100)
  const uncached = await refusal(gateway.url('/lobby'), { token: token(k2, 'cid') })
  t.equal(uncached.status, 503, 'a kid not held, with the server down: 503')
  t.equal(codeOf(uncached), 'GW_ERR_KEYS_UNAVAILABLE', 'GW_ERR_KEYS_UNAVAILABLE')
  const again = await refusal(gateway.url('/lobby'), { token: token(k2, 'dee') })
  t.equal(again.status, 503, 'within the cooldown the next one is refused without a fetch')
  await connect(gateway.url('/lobby'), { token: token(k1, 'eve') })
  t.equal((await backend.next('open', 'eve')).user, 'eve', 'the cached key admits throughout')
  t.equal(await gateway.metric('gatehouse_handshake_failures_total', { reason: 'keys_unavailable' }), 2, 'the refusals are counted as keys_unavailable')
  t.ok(await gateway.metric('gatehouse_jwks_fetches_total', { jwks: server.url, result: 'failed' }) >= 1, 'the failed fetches are counted')
  t.ok(await gateway.metric('gatehouse_jwks_fetches_total', { jwks: server.url, result: 'cooldown' }) >= 1, 'so is the fetch not made within the cooldown')
})

t.test('handshakes that waited for a key fetch still respect maxConnections', async (t) => {
  const k1 = rsaKey('k1')
  const server = await jwksServer(t, [k1])
  server.state.mode = 'hold'
  const { gateway, backend } = await lobby(t, { ...jwksAuth(server.url), limits: { maxConnections: 1 } })
  await server.reached(1)
  const attempts = ['ann', 'bob'].map(async (user) => await refusal(gateway.url('/lobby'), { token: token(k1, user) }))
  await gateway.logged(/incoming request/)
  await gateway.logged(/incoming request/)
  server.release()
  const results = await Promise.all(attempts)
  t.same(results.map((r) => r.status).sort(), [101, 503], 'one is admitted, the other refused')
  t.equal(codeOf(results.find((r) => r.status === 503) as { body: string }), 'GW_ERR_AT_CAPACITY', 'at capacity')
  await backend.next('close')
  t.equal(backend.events.all.filter((e) => e.event === 'open').length, 1, 'the backend heard of one')
})

t.test('a client that leaves while its token waits for a key fetch gives its place back', async (t) => {
  const k1 = rsaKey('k1')
  const server = await jwksServer(t, [k1])
  server.state.mode = 'hold'
  const { gateway, backend } = await lobby(t, { ...jwksAuth(server.url), limits: { maxConnections: 1 } })
  await server.reached(1)
  const accepted = new Promise<Socket>((resolve) => gateway.app.server.once('connection', resolve))
  const leave = await handshakeThenReset(gateway.port, token(k1, 'ann'))
  const atGateway = await accepted
  await gateway.logged(/incoming request/)
  const gone = new Promise((resolve) => atGateway.once('close', resolve))
  leave()
  await gone
  server.release()
  await connect(gateway.url('/lobby'), { token: token(k1, 'cid') })
  t.equal((await backend.next('open', 'cid')).user, 'cid', 'the next client gets the place')
})

/** Sends an upgrade request by hand; the function returned leaves with a TCP reset. */
async function handshakeThenReset (port: number, jwt: string): Promise<() => void> {
  const socket = createConnection(port, '127.0.0.1')
  socket.on('error', () => {})
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write(['GET /lobby HTTP/1.1', 'Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', `Authorization: Bearer ${jwt}`, '', ''].join('\r\n'))
  return () => { socket.resetAndDestroy() }
}

t.test('a JWKS server that never answers: the fetch times out and the player gets 503, not a hang', async (t) => {
  const k1 = rsaKey('k1')
  const server = await jwksServer(t, [k1])
  server.state.mode = 'hang'
  const { gateway } = await lobby(t, jwksAuth(server.url, { jwksTimeoutMs: 500 }))
  await server.reached(1)
  const result = await refusal(gateway.url('/lobby'), { token: token(k1, 'ann') })
  t.equal(result.status, 503, 'the handshake is answered 503')
  t.equal(codeOf(result), 'GW_ERR_KEYS_UNAVAILABLE', 'GW_ERR_KEYS_UNAVAILABLE')
  const logged = await gateway.logged(/JWKS fetch failed/)
  t.equal(logged.problem, 'timed out', 'the log says the fetch timed out')
})

t.test('an answer that is not JSON, or holds no usable key, keeps the keys held and refuses the others with 503', async (t) => {
  const k1 = rsaKey('k1')
  const k2 = rsaKey('k2')
  const server = await jwksServer(t, [k1])
  // long enough that the next handshake surely comes within it
  const cooldownMs = 2000
  const { gateway, backend } = await lobby(t, jwksAuth(server.url, { jwksCooldownMs: cooldownMs }))
  await server.reached(1)
  await connect(gateway.url('/lobby'), { token: token(k1, 'ann') })
  await backend.next('open', 'ann')

  server.state.mode = 'not-json'
  await elapse(cooldownMs + 100)
  const notJson = await refusal(gateway.url('/lobby'), { token: token(k2, 'bob') })
  t.equal(notJson.status, 503, 'a kid not held, and the answer not JSON: 503')
  t.equal((await gateway.logged(/JWKS fetch failed/)).problem, 'the answer is not JSON', 'logged as not JSON')
  const fetched = server.count
  t.equal((await refusal(gateway.url('/lobby'), { token: token(k2, 'bob') })).status, 503, 'so is the next one')
  t.equal(server.count, fetched, 'within the cooldown of the failed fetch, without fetching again')
  await connect(gateway.url('/lobby'), { token: token(k1, 'cid') })
  t.equal((await backend.next('open', 'cid')).user, 'cid', 'the key held still admits')

  server.state.mode = 'ok'
  const ec = ecKey('e1')
  for (const [body, why] of [
    [JSON.stringify({ keys: [] }), 'no keys'],
    [JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'k2' }, ec.jwk] }), 'a secret and an EC key, for RS256'],
    [JSON.stringify({ kid: 'k2' }), 'no keys array']
  ]) {
    server.state.body = body
    await elapse(cooldownMs + 100)
    const result = await refusal(gateway.url('/lobby'), { token: token(k2, 'dee') })
    t.equal(result.status, 503, `${why}: a kid not held gets 503`)
    await connect(gateway.url('/lobby'), { token: token(k1, 'eve') })
    t.equal((await backend.next('open', 'eve')).user, 'eve', `${why}: the key held still admits`)
  }
  assertNoSecretsLogged(t, gateway.logs, ['c2VjcmV0', String(k1.jwk.n), String(ec.jwk.x), 'maintenance'])
})

t.test('confusion: a kid naming a key of another algorithm is refused, so are HS and none', async (t) => {
  const rsa = rsaKey('shared-kid')
  const server = await jwksServer(t, [rsa])
  const { gateway, backend } = await lobby(t, jwksAuth(server.url, { algorithms: ['RS256', 'ES256'] }))
  await server.reached(1)
  await connect(gateway.url('/lobby'), { token: token(rsa, 'ann') })
  await backend.next('open', 'ann')
  const ec = ecKey('shared-kid')
  const esWithRsaKid = await refusal(gateway.url('/lobby'), { token: token(ec, 'eve') })
  t.equal(esWithRsaKid.status, 401, 'an ES256 token whose kid names the RSA key is refused')
  // the classic confusion: HMAC-sign with the served public key, as PEM, for a secret
  const rsaPem = createPublicKey({ key: rsa.jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string
  const hs = createSigner({ key: rsaPem, algorithm: 'HS256', kid: 'shared-kid' })({ sub: 'eve', iss: ISS, aud: AUD, exp: now() + 600 })
  t.equal((await refusal(gateway.url('/lobby'), { token: hs })).status, 401, 'HS256 signed with the served public key is refused')
  const none = `${b64url({ alg: 'none', kid: 'shared-kid' })}.${b64url({ sub: 'eve', iss: ISS, aud: AUD, exp: now() + 600 })}.`
  t.equal((await refusal(gateway.url('/lobby'), { token: none })).status, 401, 'alg none is refused')
  const ps = { ...rsa, alg: 'PS256' }
  t.equal((await refusal(gateway.url('/lobby'), { token: token(ps, 'eve') })).status, 401, 'PS256 (not pinned) with the right key is refused')
  t.equal(backend.events.all.filter((e) => e.event === 'open').length, 1, 'only the good token opened')
})

t.test('auth.issuers: picked by iss, each with its own keys and audience; an iss not configured gets 401', async (t) => {
  const k1 = rsaKey('k1')
  const server = await jwksServer(t, [k1])
  const secret = 'a-second-issuer-secret-long-enough-000'
  const { gateway, backend } = await lobby(t, {
    auth: {
      issuers: [
        { issuer: ISS, jwksUrl: server.url, algorithms: ['RS256'], audience: AUD },
        { issuer: 'https://chat.test', secret, algorithms: ['HS256'], audience: 'chat' }
      ],
      jwksCooldownMs: 60000
    }
  })
  await server.reached(1)
  const hs = (claims: Record<string, unknown>): string => createSigner({ key: secret, algorithm: 'HS256' })({ sub: 'x', exp: now() + 600, ...claims })

  await connect(gateway.url('/lobby'), { token: token(k1, 'ann') })
  t.equal((await backend.next('open', 'ann')).user, 'ann', 'the JWKS issuer\'s token is admitted')
  await connect(gateway.url('/lobby'), { token: hs({ sub: 'bob', iss: 'https://chat.test', aud: 'chat' }) })
  t.equal((await backend.next('open', 'bob')).user, 'bob', 'the HS256 issuer\'s token is admitted')

  const cases: Array<[string, string]> = [
    ['the first issuer with the second\'s audience', token(k1, 'eve', { aud: 'chat' })],
    ['the first issuer with no audience', token(k1, 'eve', { aud: undefined })],
    ['the second issuer with the first\'s audience', hs({ iss: 'https://chat.test', aud: AUD })],
    ['the second issuer\'s iss on a token signed by the first\'s key', token(k1, 'eve', { iss: 'https://chat.test', aud: 'chat' })],
    ['the first issuer\'s iss on a token signed with the second\'s secret', hs({ iss: ISS, aud: AUD })],
    ['an iss not configured', token(k1, 'eve', { iss: 'https://other.test' })],
    ['no iss', token(k1, 'eve', { iss: undefined })]
  ]
  for (const [why, jwt] of cases) {
    const result = await refusal(gateway.url('/lobby'), { token: jwt })
    t.equal(result.status, 401, `${why}: 401`)
    t.equal(codeOf(result), 'GW_ERR_TOKEN_INVALID', `${why}: GW_ERR_TOKEN_INVALID`)
  }
  t.equal(server.count, 1, 'no refusal caused a fetch: an unknown iss never reaches a JWKS')
})

t.test('config: JWKS and issuers errors name the field', async (t) => {
  const endpoints = [{ name: 'lobby', path: '/lobby', backend: { url: 'ws://127.0.0.1:4001' } }]
  const problems = (auth: Record<string, unknown>): string[] => {
    try {
      parseConfig({ auth, endpoints })
      return []
    } catch (err) {
      if (err instanceof ConfigError) return err.problems
      throw err
    }
  }
  const url = 'https://id.test/.well-known/jwks.json'
  t.same(problems({ jwksUrl: url, algorithms: ['RS256'] }), [], 'jwksUrl with RS256 is accepted')
  t.same(problems({ jwksUrl: 'http://127.0.0.1:9/jwks', algorithms: ['ES256'] }), [], 'http is allowed (docs/configuration.md says when it is safe)')
  t.same(problems({ jwksUrl: url, secret: 's', algorithms: ['RS256'] }), ['auth: set one of secret (HS*), publicKey or jwksUrl (RS*/PS*/ES*/EdDSA), not secret and jwksUrl'], 'both secret and jwksUrl')
  t.same(problems({ jwksUrl: url }), ['auth.algorithms: a JWKS holds public keys, so HS256 cannot be checked with jwksUrl (the default): name the key set\'s algorithms, e.g. ["RS256"]'], 'jwksUrl with the default HS256')
  t.same(problems({ jwksUrl: 'ftp://id.test/jwks', algorithms: ['RS256'] }), ['auth.jwksUrl: must be an https:// (or http://) URL, not ftp:'], 'a jwksUrl that is not http(s)')
  t.same(problems({ jwksUrl: 'https://user:pw@id.test/jwks', algorithms: ['RS256'] }), ['auth.jwksUrl: must not hold credentials (user:password@)'], 'credentials in jwksUrl')
  t.same(problems({ jwksUrl: 'not a url', algorithms: ['RS256'] }), ['auth.jwksUrl: is not a valid URL'], 'not a URL')
  t.same(problems({ issuers: [{ issuer: ISS, algorithms: ['RS256'] }] }), ['auth.issuers[0].publicKey: is required for RS256 (or auth.issuers[0].jwksUrl)'], 'an issuer without a key source')
  t.same(problems({ issuers: [{ issuer: ISS, jwksUrl: url }] }), ['auth.issuers[0].algorithms: is required'], 'an issuer without algorithms')
  t.same(problems({
    issuers: [{ issuer: ISS, jwksUrl: url, algorithms: ['RS256'] }, { issuer: ISS, secret: 's', algorithms: ['HS256'] }]
  }), ['auth.issuers[1].issuer: "https://id.test" is already used by auth.issuers[0]'], 'duplicate iss')
  t.same(problems({ issuers: [{ issuer: ISS, jwksUrl: url, algorithms: ['HS256'] }] }), ['auth.issuers[0].algorithms: a JWKS holds public keys, so HS256 cannot be checked with jwksUrl'], 'an HS issuer with a JWKS')
  t.same(problems({ secret: 's', algorithms: ['HS256'], issuer: ISS, issuers: [{ issuer: ISS, jwksUrl: url, algorithms: ['RS256'] }] }), [
    'auth.secret: is not used with auth.issuers: set it in each issuers[] entry',
    'auth.issuer: is not used with auth.issuers: set it in each issuers[] entry',
    'auth.algorithms: is not used with auth.issuers: set it in each issuers[] entry'
  ], 'top-level keys and rules beside issuers')
  t.match(problems({ issuers: [] })[0], /^auth\.issuers: must NOT have fewer than 1 items/, 'an empty issuers list')
  t.match(problems({ jwksUrl: url, algorithms: ['RS256'], jwksCooldownMs: 0 })[0], /^auth\.jwksCooldownMs: must be >= 100/, 'a cooldown of 0 would let a flood through')
})

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
