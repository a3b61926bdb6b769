/** The handshake: every bad token is a 401 before any socket opens; the three token sources. */
import t from 'tap'
import { gatewayWithBackends } from './helpers/setup.js'
import { connect, refusal } from './helpers/client.js'
import { AUDIENCE, ISSUER, SECRET, rsaKeys, signWith, tokenFor, unsignedToken } from './helpers/tokens.js'

const now = (): number => Math.floor(Date.now() / 1000)

/** One lobby endpoint, its config and the endpoint's own settings overridden. */
async function lobby (t: { teardown (fn: () => unknown): void }, overrides: Record<string, unknown> = {}, endpoint: Record<string, unknown> = {}) {
  const { gateway, backends } = await gatewayWithBackends(t, [{ name: 'lobby', path: '/lobby', ...endpoint }], overrides)
  return { backend: backends.lobby, gateway }
}

t.test('a token is accepted from each of the three sources', async (t) => {
  const { backend, gateway } = await lobby(t)
  const viaHeader = await connect(gateway.url('/lobby'), { token: tokenFor('h'), via: 'header' })
  const viaSubprotocol = await connect(gateway.url('/lobby'), { token: tokenFor('s'), via: 'subprotocol' })
  const viaQuery = await connect(gateway.url('/lobby'), { token: tokenFor('q'), via: 'query' })
  t.equal(viaSubprotocol.ws.protocol, 'bearer', 'the gateway answers the bearer subprotocol, as browsers require')
  t.equal(viaHeader.ws.protocol, '', 'no subprotocol is chosen when none was offered')
  for (const user of ['h', 's', 'q']) t.equal((await backend.next('open', user)).user, user, `the backend gets an open for ${user}`)
  viaQuery.ws.send('over the query-authenticated socket')
  t.equal((await backend.next('message', 'q')).data, 'over the query-authenticated socket', 'a socket opened with a query token carries traffic')
})

t.test('every kind of bad token gets 401 and no socket; the backend never hears of it', async (t) => {
  const { backend, gateway } = await lobby(t)
  const { privateKey } = rsaKeys()
  const base = { sub: 'mallory', iss: ISSUER, aud: AUDIENCE }
  const cases: Array<[string, string | undefined, string]> = [
    ['missing', undefined, 'GW_ERR_TOKEN_MISSING'],
    ['malformed', 'not-a-jwt', 'GW_ERR_TOKEN_INVALID'],
    ['three garbage parts', 'aaa.bbb.ccc', 'GW_ERR_TOKEN_INVALID'],
    ['expired', tokenFor('mallory', { exp: now() - 60 }), 'GW_ERR_TOKEN_EXPIRED'],
    ['not yet valid', tokenFor('mallory', { nbf: now() + 600 }), 'GW_ERR_TOKEN_INVALID'],
    ['wrong issuer', tokenFor('mallory', { iss: 'https://evil.test' }), 'GW_ERR_TOKEN_INVALID'],
    ['wrong audience', tokenFor('mallory', { aud: 'other' }), 'GW_ERR_TOKEN_INVALID'],
    ['bad signature', signWith('another-secret-entirely-000000000', 'HS256', { ...base, exp: now() + 60 }), 'GW_ERR_TOKEN_INVALID'],
    ['alg none', unsignedToken('mallory'), 'GW_ERR_TOKEN_INVALID'],
    ['wrong algorithm (HS512 where HS256 is pinned)', signWith(SECRET, 'HS512', { ...base, exp: now() + 60 }), 'GW_ERR_TOKEN_INVALID'],
    ['RS256 where HS256 is pinned', signWith(privateKey, 'RS256', { ...base, exp: now() + 60 }), 'GW_ERR_TOKEN_INVALID'],
    ['no user claim', signWith(SECRET, 'HS256', { iss: ISSUER, aud: AUDIENCE, exp: now() + 60 }), 'GW_ERR_TOKEN_INVALID'],
    ['empty user claim', tokenFor(''), 'GW_ERR_TOKEN_INVALID'],
    ['tampered payload', tamper(tokenFor('mallory')), 'GW_ERR_TOKEN_INVALID']
  ]
  for (const [name, token, code] of cases) {
    const result = await refusal(gateway.url('/lobby'), { token })
    t.equal(result.status, 401, `${name}: 401`)
    t.equal(result.opened, false, `${name}: no socket`)
    t.equal(JSON.parse(result.body).code, code, `${name}: ${code}`)
  }
  const subprotocolRefusal = await refusal(gateway.url('/lobby'), { token: 'garbage', via: 'subprotocol' })
  t.equal(subprotocolRefusal.status, 401, 'a bad token offered as a subprotocol is refused too')
  t.equal(backend.events.all.filter((e) => e.event === 'open').length, 0, 'no open event was sent')
  t.equal(await gateway.metric('gatehouse_handshake_failures_total', { reason: 'token_invalid' }), 13, 'thirteen invalid tokens are counted')
  t.equal(await gateway.metric('gatehouse_handshake_failures_total', { reason: 'token_expired' }), 1, 'one expired token is counted')
  t.equal(await gateway.metric('gatehouse_handshake_failures_total', { reason: 'token_missing' }), 1, 'one missing token is counted')
})

t.test('RS256 with a public key; HS/RS confusion is refused', async (t) => {
  const { privateKey, publicKey } = rsaKeys()
  const { backend, gateway } = await lobby(t, { auth: { publicKey, algorithms: ['RS256'], issuer: ISSUER, audience: AUDIENCE } })
  const good = signWith(privateKey, 'RS256', { sub: 'rita', iss: ISSUER, aud: AUDIENCE, exp: now() + 60 })
  await connect(gateway.url('/lobby'), { token: good })
  t.equal((await backend.next('open', 'rita')).user, 'rita', 'a token signed with the private key is accepted')
  // the classic confusion attack: HMAC-sign with the public key as the secret
  const confused = signWith(publicKey, 'HS256', { sub: 'eve', iss: ISSUER, aud: AUDIENCE, exp: now() + 60 })
  t.equal((await refusal(gateway.url('/lobby'), { token: confused })).status, 401, 'an HS256 token signed with the public key is refused')
  t.equal((await refusal(gateway.url('/lobby'), { token: unsignedToken('eve') })).status, 401, 'an unsigned token is refused')
  t.equal((await refusal(gateway.url('/lobby'), { token: tokenFor('eve') })).status, 401, 'an HS256 token is refused when RS256 is pinned')
})

t.test('tokenSources limits where a token may come from', async (t) => {
  const { gateway } = await lobby(t, { auth: { secret: SECRET, issuer: ISSUER, audience: AUDIENCE, tokenSources: ['subprotocol'] } })
  t.equal((await refusal(gateway.url('/lobby'), { token: tokenFor('a'), via: 'query' })).status, 401, 'a query token is refused when only subprotocol is allowed')
  t.equal((await refusal(gateway.url('/lobby'), { token: tokenFor('a'), via: 'header' })).status, 401, 'a header token is refused when only subprotocol is allowed')
  const ok = await connect(gateway.url('/lobby'), { token: tokenFor('a'), via: 'subprotocol' })
  t.equal(ok.ws.protocol, 'bearer', 'the subprotocol token is accepted and answered with bearer')
})

t.test('the user may come from a nested claim; clock tolerance admits a just-expired token', async (t) => {
  const { backend, gateway } = await lobby(t, {
    auth: { secret: SECRET, issuer: ISSUER, audience: AUDIENCE, userClaim: 'player.id', clockToleranceSec: 30 }
  })
  await connect(gateway.url('/lobby'), { token: tokenFor('ignored', { player: { id: 'nested-7' }, exp: now() - 5 }) })
  t.equal((await backend.next('open')).user, 'nested-7', 'the user comes from player.id')
  const numeric = await refusal(gateway.url('/lobby'), { token: tokenFor('x', { player: { id: { not: 'a string' } } }) })
  t.equal(numeric.status, 401, 'an object is not a user id')
})

t.test('origin allow-list, unknown paths, plain HTTP', async (t) => {
  const { gateway } = await lobby(t, {}, { limits: { allowedOrigins: ['https://game.example'] } })
  const forbidden = await refusal(gateway.url('/lobby'), { token: tokenFor('o'), origin: 'https://evil.example' })
  t.equal(forbidden.status, 403, 'a foreign origin is refused with 403')
  t.equal(JSON.parse(forbidden.body).code, 'GW_ERR_ORIGIN_FORBIDDEN', 'the refusal names GW_ERR_ORIGIN_FORBIDDEN')
  await connect(gateway.url('/lobby'), { token: tokenFor('o'), origin: 'https://game.example' })
  await connect(gateway.url('/lobby'), { token: tokenFor('p') }) // non-browser clients send no Origin
  t.equal((await refusal(gateway.url('/nowhere'), { token: tokenFor('q') })).status, 404, 'an unknown path gets 404')
  const plain = await gateway.get('/lobby')
  t.equal(plain.status, 426, 'a plain HTTP GET on a socket endpoint is told to upgrade')
  t.equal(JSON.parse(plain.body).code, 'GW_ERR_UPGRADE_REQUIRED', 'the refusal names GW_ERR_UPGRADE_REQUIRED')
})

t.test('tokens never reach a log line', async (t) => {
  const { gateway } = await lobby(t)
  const secretToken = tokenFor('logged', { marker: 'never-log-me' })
  await connect(gateway.url('/lobby'), { token: secretToken, via: 'query' })
  await connect(gateway.url('/lobby'), { token: tokenFor('sub', { marker: 'never-log-me' }), via: 'subprotocol' })
  await refusal(gateway.url('/lobby?access_token=' + encodeURIComponent(secretToken + 'x')))
  await refusal(gateway.url('/lobby'), { token: 'bad.token.here' })
  const lost = await refusal(gateway.url('/lobbyy?access_token=' + secretToken))
  t.equal(lost.status, 404, 'a mistyped path gets 404')
  t.notOk(lost.body.includes(secretToken), 'a 404 does not echo the token back either')
  await connect(gateway.url('/lobby?%61ccess_token=' + tokenFor('encoded', { marker: 'never-log-me' })))
  const all = gateway.logs.join('\n')
  t.ok(all.includes('access_token=[REDACTED]'), 'the query token is redacted in the request line')
  t.notOk(all.includes(secretToken.split('.')[2]), 'no token signature in the logs')
  t.notOk(all.includes(secretToken.split('.')[1]), 'no token payload in the logs')
  t.notOk(all.includes(SECRET), 'no secret in the logs')
  t.notOk(all.includes('bad.token.here'), 'not even a bad token')
  t.notOk(/"url":"[^"]*ey[A-Za-z0-9_-]{20}/.test(all), 'no JWT-looking text in any logged URL, an encoded key or an unknown path included')
})

function tamper (token: string): string {
  const [header, payload, signature] = token.split('.')
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString())
  claims.sub = 'admin'
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`
}
