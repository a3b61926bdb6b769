/**
 * An outside red team's attacks after the issue 10 hardening, over loopback:
 * the ones that found a defect (pipelined upgrades, claims nested too deep,
 * garbage on the cluster's Redis channels) and a representative set of the
 * ones that held (handshakes ws refuses after admission, hostile backend
 * frames, odd claims, tokens in trace logs).
 */
import { createHmac } from 'node:crypto'
import { Redis } from 'ioredis'
import t from 'tap'
import { backendFor, type TestBackend } from './helpers/backend.js'
import { startGateway, testConfig, type TestGateway } from './helpers/gateway.js'
import { connect, refusal } from './helpers/client.js'
import { redisFor } from './helpers/redis.js'
import { eventually } from './helpers/cluster.js'
import { AUDIENCE, ISSUER, SECRET, tokenFor } from './helpers/tokens.js'
import { raw, upgradeRequest } from './helpers/raw-http.js'

type Teardown = { teardown (fn: () => unknown): void }

const now = (): number => Math.floor(Date.now() / 1000)
const b64url = (text: string): string => Buffer.from(text).toString('base64url')

/** An HS256 token from raw JSON texts, so payloads JSON.stringify could not build (or a signer would refuse) can be signed. */
function signRaw (payload: string, header = '{"alg":"HS256","typ":"JWT"}'): string {
  const signed = `${b64url(header)}.${b64url(payload)}`
  return `${signed}.${createHmac('sha256', SECRET).update(signed).digest('base64url')}`
}

/** A valid payload for `user` as JSON text, with `extra` (raw JSON members) appended. */
function payloadText (user: string, extra = ''): string {
  const base = JSON.stringify({ sub: user, iss: ISSUER, aud: AUDIENCE, exp: now() + 600 })
  return extra === '' ? base : `${base.slice(0, -1)},${extra}}`
}

const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)

async function setup (t: Teardown, endpoint: Record<string, unknown> = {}, overrides: Record<string, unknown> = {}): Promise<{ gateway: TestGateway, backend: TestBackend }> {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby/:room', backend: backend.url, ...endpoint }], { log: { level: 'trace' }, ...overrides }))
  await backend.next('hello')
  return { gateway, backend }
}

t.test('an upgrade pipelined behind another request on one connection has its socket ended, unauthenticated or not', async (t) => {
  const { gateway, backend } = await setup(t)
  const token = tokenFor('piper')
  const requests = [
    `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n${upgradeRequest('/lobby/r1')}`,
    `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n${upgradeRequest('/lobby/r1', `Authorization: Bearer ${token}\r\n`)}`,
    `GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n${upgradeRequest(`/lobby/r1?access_token=${token}`)}`
  ]
  for (const request of requests) {
    const answer = await raw(gateway.port, request)
    t.ok(answer.ended, 'the server ended the connection')
    t.match(answer.response, /^HTTP\/1\.1 200 /, 'the earlier request was answered')
    t.notMatch(answer.response, / 101 /, 'and the pipelined upgrade never became a WebSocket')
  }
  // the user was never admitted: a real connection of the same user is a fresh open
  await connect(gateway.url('/lobby/r1'), { token })
  await backend.next('open', 'piper')
  t.equal(backend.events.all.filter((e) => e.user === 'piper').length, 1, 'the backend heard of piper once, from the real connection')
  t.notOk(gateway.logs.some((line) => line.includes(token.split('.')[2])), 'the token is in no log line')
})

t.test('a token whose claims nest thousands deep is refused, and the backend never gets a close without an open', async (t) => {
  const { gateway, backend } = await setup(t)
  const deep = signRaw(payloadText('deep', `"profile":${nested(5000)}`))
  const result = await refusal(gateway.url('/lobby/r1'), { token: deep })
  t.equal(result.status, 401, 'HTTP 401')
  t.match(JSON.parse(result.body), { code: 'GW_ERR_TOKEN_INVALID', message: /nested deeper than 64 levels/ }, 'the refusal says the claims nest deeper than 64 levels')
  // claims nested as deep as any real token's are still welcome
  const modest = signRaw(payloadText('modest', `"profile":${nested(60)}`))
  await connect(gateway.url('/lobby/r1'), { token: modest })
  const open = await backend.next('open', 'modest')
  t.ok(Array.isArray((open.claims as Record<string, unknown>).profile), 'the nested claim reaches the backend')
  t.same(backend.events.all.filter((e) => e.user === 'deep'), [], 'nothing about the refused user reached the backend')
})

t.test('garbage on the cluster channels is counted and logged, never thrown: the node keeps serving', async (t) => {
  const redis = await redisFor(t)
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby/:room', backend: backend.url }], {
    server: { host: '127.0.0.1', port: 0, nodeId: 'rt-node' },
    cluster: { redis: redis.url, name: 'rt', presenceTtlMs: 1500 }
  }))
  await backend.next('hello')
  await eventually(() => gateway.metric('gatehouse_broker_up'), (up) => up === 1, 15000, 'the node joined redis')
  const player = await connect(gateway.url('/lobby/r1'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  const publisher = new Redis(redis.url)
  t.teardown(() => publisher.quit())
  const garbage = [
    'null', '7', '"text"', '[]', '{"t":"actions"}',
    '{"t":"actions","e":"lobby","a":null,"from":"x","n":1,"ep":"x"}',
    '{"t":"actions","e":"lobby","a":[null],"from":"x","n":2,"ep":"x"}',
    `{"t":"actions","e":"lobby","a":[{"action":"send","all":true,"data":${nested(8000)}}],"from":"x","n":3,"ep":"x"}`,
    '{"t":"evict"}', '{"t":"evicted"}', '{"t":"unknown"}'
  ]
  for (const channel of ['rt:node:rt-node', 'rt:all']) {
    for (const text of garbage) await publisher.publish(channel, text)
  }
  await eventually(() => gateway.metric('gatehouse_broker_errors_total', { op: 'message' }), (n) => n >= 8, 15000, 'the malformed messages counted (4 forms that broke the handler, on each of 2 channels)')
  // still serving: the player gets a backend's send, and a new player gets in
  backend.send({ action: 'send', user: 'alice', data: 'still here' })
  t.equal(await player.next(), 'still here', 'the connected player is still served')
  await connect(gateway.url('/lobby/r1'), { token: tokenFor('bob') })
  await backend.next('open', 'bob')
  t.pass('a new handshake is admitted')
})

t.test('handshakes ws refuses after admission give back their claim and their socket, and tell the backend nothing', async (t) => {
  const { gateway, backend } = await setup(t, { duplicate: 'reject' })
  const cases: Array<[string, (header: string) => string]> = [
    ['a malformed Sec-WebSocket-Protocol', (auth) => upgradeRequest('/lobby/r1', `${auth}Sec-WebSocket-Protocol: a b\r\n`)],
    ['an unsupported Sec-WebSocket-Version', (auth) => upgradeRequest('/lobby/r1', auth).replace('Version: 13', 'Version: 12')],
    ['a malformed Sec-WebSocket-Key', (auth) => upgradeRequest('/lobby/r1', auth).replace('dGhlIHNhbXBsZSBub25jZQ==', 'short')],
    ['an Upgrade header other than websocket', (auth) => upgradeRequest('/lobby/r1', auth).replace('Upgrade: websocket', 'Upgrade: h2c')]
  ]
  for (const [name, request] of cases) {
    const token = tokenFor('eve')
    const answer = await raw(gateway.port, request(`Authorization: Bearer ${token}\r\n`))
    t.ok(answer.ended, `${name}: socket ended`)
    t.match(answer.response, /^HTTP\/1\.1 400 /, `${name}: HTTP 400`)
    // under `reject` a leaked claim or session would make this a 409
    const again = await connect(gateway.url('/lobby/r1'), { token: tokenFor('eve') })
    await backend.next('open', 'eve')
    again.ws.close(1000)
    await backend.next('close', 'eve')
  }
  t.equal(backend.events.all.filter((e) => e.event === 'open').length, cases.length, 'one open per real connection, none for the refused ones')
})

t.test('backend frames nested 8,000 deep in any field, and abused acks, are counted; the link and its players stay up', async (t) => {
  const acked = await backendFor(t)
  const gw = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby/:room', backend: { url: acked.url, acks: true, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }], { log: { level: 'trace' } }))
  await acked.next('hello')
  const player = await connect(gw.url('/lobby/r1'), { token: tokenFor('alice') })
  await acked.next('open', 'alice')
  const deep = nested(8000)
  const frames = [
    `{"action":"send","user":"alice","data":1,"extra":${deep}}`,
    `{"action":"send","users":${deep},"data":1}`,
    `{"action":"send","user":${deep},"data":1}`,
    `{"action":"send","user":"alice","data":${deep}}`,
    `{"action":"send","all":true,"data":${deep}}`,
    `{"action":"close","user":"alice","code":${deep}}`,
    `{"action":"close","user":"alice","reason":${deep}}`,
    `{"action":"ack","seq":${deep}}`,
    `{"action":${deep}}`,
    deep,
    `${'{"a":'.repeat(8000)}1${'}'.repeat(8000)}`,
    '{"action":"ack","seq":-1}',
    '{"action":"ack","seq":1.5}',
    '{"action":"ack","seq":"1"}',
    '{"action":"__proto__"}',
    '{"action":"close","user":"alice","code":1005}'
  ]
  for (const frame of frames) acked.send(frame)
  acked.send({ action: 'send', user: 'alice', data: 'after the storm' })
  t.equal(await player.next(), 'after the storm', 'the player is still served, in order')
  t.equal(await gw.metric('gatehouse_backend_frame_errors_total'), frames.length, 'every hostile frame counted once')
  t.equal(acked.links.all.length, 1, 'the link was never dropped')
  t.ok(gw.logs.every((line) => line.length < 4096), 'no log line grew with the frames')
})

t.test('odd claims and headers: each refused with 401 and a reason; numeric and unusual user ids are taken as strings', async (t) => {
  const { gateway, backend } = await setup(t)
  const refused: Array<[string, string, string?]> = [
    ['sub an object', payloadText('x').replace('"sub":"x"', '"sub":{"id":"admin"}')],
    ['sub an array', payloadText('x').replace('"sub":"x"', '"sub":["admin"]')],
    ['sub true', payloadText('x').replace('"sub":"x"', '"sub":true')],
    ['sub empty', payloadText('x').replace('"sub":"x"', '"sub":""')],
    ['exp a string', payloadText('x').replace(/"exp":\d+/, `"exp":"${now() + 600}"`)],
    ['exp null', payloadText('x').replace(/"exp":\d+/, '"exp":null')],
    ['nbf a string', payloadText('x', '"nbf":"0"')],
    ['iss an array holding the issuer', payloadText('x').replace(`"iss":"${ISSUER}"`, `"iss":["${ISSUER}","evil"]`)],
    ['aud a number', payloadText('x').replace(`"aud":"${AUDIENCE}"`, '"aud":5')],
    ['an unknown critical header', payloadText('x'), '{"alg":"HS256","crit":["x-extension"],"x-extension":1}'],
    ['alg in lower case', payloadText('x'), '{"alg":"hs256"}']
  ]
  for (const [name, payload, header] of refused) {
    const result = await refusal(gateway.url('/lobby/r1'), { token: signRaw(payload, header) })
    t.equal(result.status, 401, `${name}: 401`)
    t.equal(JSON.parse(result.body).code, 'GW_ERR_TOKEN_INVALID', `${name}: GW_ERR_TOKEN_INVALID`)
  }
  await connect(gateway.url('/lobby/r1'), { token: signRaw(payloadText('x').replace('"sub":"x"', '"sub":1.5')) })
  t.equal((await backend.next('open')).user, '1.5', 'a numeric sub becomes its decimal string')
})

t.test('no token reaches a log line at trace, whatever the handshake did', async (t) => {
  const { gateway } = await setup(t)
  const tokens: string[] = []
  const mint = (user: string): string => {
    const token = tokenFor(user)
    tokens.push(token)
    return token
  }
  await refusal(gateway.url('/nowhere'), { token: mint('a'), via: 'query' })
  await refusal(`${gateway.url('/lobby/r1')}%ZZ`, { token: mint('b'), via: 'query' })
  await refusal(gateway.url(`/lobby/${'x'.repeat(200)}`), { token: mint('c'), via: 'query' })
  await refusal(gateway.url('/healthz'), { token: mint('d'), via: 'query' })
  await refusal(gateway.url('/lobby/r1'), { token: `${mint('e')}x`, via: 'subprotocol' })
  await raw(gateway.port, upgradeRequest('/lobby/r1', `Authorization: Bearer ${mint('f')}\r\nSec-WebSocket-Protocol: a b\r\n`))
  await raw(gateway.port, `GET /lobby/r1 HTTP/1.1\r\nAuthorization: Bearer ${mint('g')}\r\nBad Header\r\n\r\n`)
  await raw(gateway.port, `GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n${upgradeRequest(`/lobby/r1?access_token=${mint('h')}`)}`)
  const client = await connect(gateway.url('/lobby/r1'), { token: mint('i'), via: 'query' })
  client.ws.close(1000)
  await client.closed
  const text = gateway.logs.join('\n')
  for (const token of tokens) t.notOk(text.includes(token.split('.')[2]), 'the signature of a token is in no log line')
  t.ok(gateway.logs.some((line) => /"level":20/.test(line)), 'debug lines were written, so the check saw below info')
})

t.test('reconnect churn across rooms does not reset the rate limit: a user gets its burst once', async (t) => {
  const { gateway, backend } = await setup(t, {}, { limits: { messagesPerSecond: 1, burst: 10 } })
  const codes = new Set<number>()
  const started = performance.now()
  for (let i = 0; i < 10; i++) {
    const client = await connect(gateway.url(`/lobby/r${i % 3}`), { token: tokenFor('churn') })
    for (let k = 0; k < 5; k++) client.ws.send('m')
    client.ws.close(1000)
    codes.add((await client.closed).code)
    await backend.next('close', 'churn')
  }
  t.ok(codes.has(1008), 'reconnecting clients past the burst are closed with 1008')
  const refilled = Math.ceil((performance.now() - started) / 1000)
  const relayed = backend.events.all.filter((e) => e.event === 'message').length
  t.ok(relayed <= 10 + refilled, `at most the burst plus one a second of refill reached the backend (${relayed} of 50 sent)`)
})
