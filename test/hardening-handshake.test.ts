/**
 * Issue 10, the handshake: configured iss/aud and exp are required, user ids
 * are bounded, every upgrade that does not become a WebSocket ends its TCP
 * socket and echoes no token, operator routes refuse upgrades, and no token
 * reaches a log line at any level.
 */
import t from 'tap'
import { backendFor } from './helpers/backend.js'
import { startGateway, testConfig, type TestGateway } from './helpers/gateway.js'
import { connect, refusal } from './helpers/client.js'
import { AUDIENCE, ISSUER, SECRET, signWith, tokenFor } from './helpers/tokens.js'
import { parseConfig, ConfigError } from '../src/index.js'
import { raw, upgradeRequest } from './helpers/raw-http.js'

type Teardown = { teardown (fn: () => unknown): void }

const now = (): number => Math.floor(Date.now() / 1000)
const hs256 = (payload: Record<string, unknown>): string => signWith(SECRET, 'HS256', payload)

async function setup (t: Teardown, overrides: Record<string, unknown> = {}): Promise<TestGateway> {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby/:room', backend: backend.url }], overrides))
  await backend.next('hello')
  return gateway
}

/**
 * Every log line, with any Buffer pino wrote as `{"type":"Buffer","data":[...]}`
 * decoded: a token inside a logged Buffer is a token in the log too.
 */
function logText (gateway: TestGateway): string {
  return gateway.logs.map((line) => line.replace(/\{"type":"Buffer","data":\[([\d,]*)\]\}/g, (_all, bytes: string) =>
    Buffer.from(bytes === '' ? [] : bytes.split(',').map(Number)).toString('latin1'))).join('\n')
}

t.test('configured issuer and audience are required: a token without iss or aud is refused', async (t) => {
  const gateway = await setup(t)
  const cases: Array<[string, Record<string, unknown>]> = [
    ['no iss', { sub: 'mallory', aud: AUDIENCE, exp: now() + 600 }],
    ['no aud', { sub: 'mallory', iss: ISSUER, exp: now() + 600 }],
    ['neither', { sub: 'mallory', exp: now() + 600 }]
  ]
  for (const [name, payload] of cases) {
    const result = await refusal(gateway.url('/lobby/r1'), { token: hs256(payload) })
    t.equal(result.status, 401, `${name}: 401`)
    t.equal(JSON.parse(result.body).code, 'GW_ERR_TOKEN_INVALID', `${name}: GW_ERR_TOKEN_INVALID`)
    t.match(JSON.parse(result.body).message, /claim is required/, `${name}: the message says a claim is missing`)
  }
  const ok = await connect(gateway.url('/lobby/r1'), { token: tokenFor('alice') })
  t.equal(ok.ws.readyState, ok.ws.OPEN, 'a token with both is accepted')
  ok.ws.close()
})

t.test('an issuer or audience not configured is not required', async (t) => {
  const gateway = await setup(t, { auth: { secret: SECRET, issuer: ISSUER } })
  const ok = await connect(gateway.url('/lobby/r1'), { token: hs256({ sub: 'alice', iss: ISSUER, exp: now() + 600 }) })
  t.equal(ok.ws.readyState, ok.ws.OPEN, 'no aud, none configured: accepted')
  ok.ws.close()
  t.equal((await refusal(gateway.url('/lobby/r1'), { token: hs256({ sub: 'bob', aud: AUDIENCE, exp: now() + 600 }) })).status, 401, 'no iss, one configured: refused')
})

t.test('auth.requireExp: tokens without exp are refused by default, accepted when switched off', async (t) => {
  const strict = await setup(t)
  const forever = hs256({ sub: 'eternal', iss: ISSUER, aud: AUDIENCE })
  const refused = await refusal(strict.url('/lobby/r1'), { token: forever })
  t.equal(refused.status, 401, 'no exp: 401')
  t.equal(JSON.parse(refused.body).code, 'GW_ERR_TOKEN_INVALID', 'no exp: GW_ERR_TOKEN_INVALID')
  t.match(JSON.parse(refused.body).message, /exp claim is required/, 'no exp: the message says the exp claim is required')
  const nullExp = await refusal(strict.url('/lobby/r1'), { token: hs256({ sub: 'eternal', iss: ISSUER, aud: AUDIENCE, exp: null }) })
  t.equal(nullExp.status, 401, 'exp: null is no expiry either: 401')

  const lenient = await setup(t, { auth: { secret: SECRET, issuer: ISSUER, audience: AUDIENCE, requireExp: false } })
  const ok = await connect(lenient.url('/lobby/r1'), { token: forever })
  t.equal(ok.ws.readyState, ok.ws.OPEN, 'requireExp: false lets it in')
  ok.ws.close()
})

t.test('auth.maxUserIdLength: a longer user id is refused with 401 (default 256 bytes)', async (t) => {
  const gateway = await setup(t)
  const atLimit = await connect(gateway.url('/lobby/r1'), { token: tokenFor('u'.repeat(256)) })
  t.equal(atLimit.ws.readyState, atLimit.ws.OPEN, '256 bytes: accepted')
  atLimit.ws.close()
  for (const [name, user] of [['257 ASCII bytes', 'u'.repeat(257)], ['129 × "é" (258 bytes, 129 characters)', 'é'.repeat(129)]]) {
    const result = await refusal(gateway.url('/lobby/r1'), { token: tokenFor(user) })
    t.equal(result.status, 401, `${name}: 401`)
    t.equal(JSON.parse(result.body).code, 'GW_ERR_TOKEN_INVALID', `${name}: GW_ERR_TOKEN_INVALID`)
    t.match(JSON.parse(result.body).message, /longer than 256 bytes/, `${name}: the message says longer than 256 bytes`)
  }

  const short = await setup(t, { auth: { secret: SECRET, issuer: ISSUER, audience: AUDIENCE, maxUserIdLength: 8 } })
  t.equal((await refusal(short.url('/lobby/r1'), { token: tokenFor('ninechars') })).status, 401, 'a configured cap applies')
  const ok = await connect(short.url('/lobby/r1'), { token: tokenFor('eightchr') })
  t.equal(ok.ws.readyState, ok.ws.OPEN, 'within the configured cap: accepted')
  ok.ws.close()

  const problems = (() => {
    try {
      parseConfig(testConfig([{ name: 'lobby', path: '/lobby', backend: 'ws://127.0.0.1:1' }], { auth: { secret: SECRET, maxUserIdLength: 0 } }), {})
    } catch (err) {
      if (err instanceof ConfigError) return err.problems.join('\n')
      throw err
    }
    return ''
  })()
  t.match(problems, /auth\.maxUserIdLength/, 'a bad cap is named in the config error')
})

t.test('every upgrade that does not become a WebSocket ends its socket, and no answer echoes the token', async (t) => {
  const gateway = await setup(t)
  const token = tokenFor('alice')
  const query = `?access_token=${token}`
  const cases: Array<[string, string, number, string]> = [
    ['malformed URL', `/%ZZ${query}`, 400, 'GW_ERR_BAD_URL'],
    ['malformed URL in a parameter', `/lobby/%ZZ${query}`, 400, 'GW_ERR_BAD_URL'],
    ['parameter over maxParamLength', `/lobby/${'x'.repeat(150)}${query}`, 414, 'GW_ERR_PARAM_TOO_LONG'],
    ['unknown path', `/nowhere${query}`, 404, 'GW_ERR_NOT_FOUND'],
    ['bad token', '/lobby/r1?access_token=not-a-jwt', 401, 'GW_ERR_TOKEN_INVALID'],
    ['no token', '/lobby/r1', 401, 'GW_ERR_TOKEN_MISSING']
  ]
  for (const [name, path, status, code] of cases) {
    const answer = await raw(gateway.port, upgradeRequest(path))
    t.equal(answer.status, status, `${name}: ${status}`)
    t.ok(answer.ended, `${name}: the server ended the TCP connection`)
    t.match(answer.response, code, `${name}: ${code}`)
    t.notMatch(answer.response, token, `${name}: the token is not echoed`)
  }
  const old = await raw(gateway.port, upgradeRequest(`/lobby/r1${query}`).replace('HTTP/1.1', 'HTTP/1.0'))
  t.equal(old.status, 426, 'an HTTP/1.0 upgrade with a good token: 426, not 101 (a handshake is HTTP/1.1)')
  t.ok(old.ended, 'HTTP/1.0 upgrade: the server ended the TCP connection')
  t.match(old.response, 'GW_ERR_UPGRADE_REQUIRED', 'HTTP/1.0 upgrade: GW_ERR_UPGRADE_REQUIRED')
  t.notMatch(logText(gateway), token, 'no log line holds the token')
})

t.test('the operator routes refuse WebSocket upgrades with 400 and end the socket; the token is not logged', async (t) => {
  const gateway = await setup(t)
  const token = tokenFor('alice')
  for (const path of ['/healthz', '/readyz', '/metrics']) {
    const viaClient = await refusal(gateway.url(path), { token, via: 'query' })
    t.equal(viaClient.status, 400, `${path}: a WebSocket client gets 400, not 101`)
    t.equal(viaClient.opened, false, `${path}: no socket opened`)
    t.equal(JSON.parse(viaClient.body).code, 'GW_ERR_UPGRADE_REFUSED', `${path}: a WebSocket client gets GW_ERR_UPGRADE_REFUSED`)

    const answer = await raw(gateway.port, upgradeRequest(`${path}?access_token=${token}`))
    t.equal(answer.status, 400, `${path}: raw upgrade gets 400`)
    t.ok(answer.ended, `${path}: the server ended the TCP connection`)
    t.notMatch(answer.response, token, `${path}: the token is not echoed`)
  }
  t.equal((await gateway.get('/healthz')).status, 200, 'plain HTTP still works')
  t.notMatch(logText(gateway), token, 'no log line holds the token')
})

t.test('at log level trace no token is logged: not from a request Node cannot parse, nor from handshakes by any source', async (t) => {
  const gateway = await setup(t, { log: { level: 'trace' } })
  const token = tokenFor('alice')
  const answer = await raw(gateway.port, `GET /lobby/r1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nNot a header line\r\n\r\n`)
  t.equal(answer.status, 400, 'a request Node cannot parse: 400')
  t.ok(answer.ended, 'the server ended the TCP connection')
  for (const via of ['header', 'subprotocol', 'query'] as const) {
    const client = await connect(gateway.url('/lobby/r1'), { token, via })
    client.ws.close()
    await client.closed
    t.equal((await refusal(gateway.url('/lobby/r1'), { token: `${token}x`, via })).status, 401, `a bad token via ${via}: 401`)
  }
  t.notMatch(logText(gateway), token, 'no log line holds the token, at any level')
  const line = await gateway.logged(/unparsable HTTP request refused/)
  t.equal(line.code, 'HPE_INVALID_HEADER_TOKEN', 'the refusal is logged, with the parser error code')
})

t.test('params are percent-decoded and may be empty, as protocol/PROTOCOL.md §3 says', async (t) => {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby/:room', backend: backend.url }]))
  await backend.next('hello')
  for (const [path, room] of [['/lobby/a%2Fb', 'a/b'], ['/lobby/%C3%A9', 'é'], ['/lobby/', ''], ['/lobby/a+b', 'a+b']]) {
    const client = await connect(gateway.url(path), { token: tokenFor('p') })
    t.same((await backend.next('open', 'p')).params, { room }, `${path} -> ${JSON.stringify(room)}`)
    client.ws.close()
    await backend.next('close', 'p')
  }
})

t.test('slowloris: a handshake head trickled, or never sent, is answered 408 and its socket ended after server.headersTimeoutMs', async (t) => {
  const gateway = await setup(t, { server: { host: '127.0.0.1', port: 0, shutdownTimeoutMs: 3000, headersTimeoutMs: 1000 } })
  const partial = upgradeRequest('/lobby/r1').split('\r\n').slice(0, 3).join('\r\n') + '\r\n'
  // raw() waits 10 s; Node's own deadline (60 s, checked every 30 s) would still hold the socket then
  const trickled = await raw(gateway.port, partial)
  t.ok(trickled.ended, 'a head that never ends: the server ended the TCP connection')
  t.equal(trickled.status, 408, 'a head that never ends: 408')
  const silent = await raw(gateway.port, '')
  t.ok(silent.ended, 'a connection that sends nothing: the server ended it')
  t.equal((await gateway.get('/healthz')).status, 200, 'the gateway serves on')
})

t.test('config: server.headersTimeoutMs out of 1000..300000, and a nodeId over 200 characters, are refused by field', async (t) => {
  const problems = (server: Record<string, unknown>): string => {
    try {
      parseConfig(testConfig([{ name: 'lobby', path: '/lobby', backend: 'ws://127.0.0.1:1' }], { server }))
    } catch (err) {
      if (err instanceof ConfigError) return err.problems.join('\n')
      throw err
    }
    return ''
  }
  t.match(problems({ headersTimeoutMs: 10 }), /server\.headersTimeoutMs: must be >= 1000/, 'too short: the field and the bound are named')
  // Node refuses a head timeout over its request timeout (300 s) at start: named here instead
  t.match(problems({ headersTimeoutMs: 300001 }), /server\.headersTimeoutMs: must be <= 300000/, 'too long: the field and the bound are named')
  t.match(problems({ nodeId: 'n'.repeat(201) }), /server\.nodeId: must NOT have more than 200 characters/, 'a nodeId that would make connection ids too long for the wire')
})
