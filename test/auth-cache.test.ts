/**
 * auth.verifyCacheSize (docs/configuration.md): a verified token is remembered,
 * but a remembered token still expires, honours clockToleranceSec, and a
 * token with its signature swapped is verified afresh and refused.
 */
import t from 'tap'
import { parseConfig, ConfigError } from '../src/index.js'
import { gatewayWithBackends } from './helpers/setup.js'
import { connect, refusal } from './helpers/client.js'
import { AUDIENCE, ISSUER, SECRET, signWith } from './helpers/tokens.js'
import { MAX_CACHED_TOKEN_CHARS } from '../src/auth/verified-tokens.js'

const now = (): number => Math.floor(Date.now() / 1000)

/** Resolves once the wall clock has passed `epochMs`: token expiry is a matter of the clock, not of an event. */
async function clockPast (epochMs: number): Promise<void> {
  while (Date.now() < epochMs) await new Promise((resolve) => setTimeout(resolve, Math.min(100, epochMs - Date.now() + 1)))
}

const lobby = async (t: { teardown (fn: () => unknown): void }, auth: Record<string, unknown>) =>
  await gatewayWithBackends(t, [{ name: 'lobby', path: '/lobby' }], { auth: { secret: SECRET, algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE, ...auth } })

t.test('the cache size is configured, and a bad one is named', async (t) => {
  const base = { auth: { secret: 's' }, endpoints: [{ name: 'lobby', path: '/lobby', backend: { url: 'ws://127.0.0.1:4001' } }] }
  t.equal(parseConfig(base, {}).auth.verifyCacheSize, 10000, 'defaults to 10,000 tokens')
  t.equal(parseConfig({ ...base, auth: { secret: 's', verifyCacheSize: 0 } }, {}).auth.verifyCacheSize, 0, '0 (off) is accepted')
  let problems: string[] = []
  try {
    parseConfig({ ...base, auth: { secret: 's', verifyCacheSize: -1 } }, {})
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    problems = err.problems
  }
  t.match(problems.join('\n'), /auth\.verifyCacheSize/, 'a negative size is refused, naming the field')
})

for (const verifyCacheSize of [10000, 0]) {
  t.test(`cache ${verifyCacheSize === 0 ? 'off' : 'on'}: a token verified before its exp is refused after exp + clockToleranceSec`, async (t) => {
    const { backends, gateway } = await lobby(t, { clockToleranceSec: 3, verifyCacheSize })
    const exp = now() + 2
    const token = signWith(SECRET, 'HS256', { sub: 'ada', iss: ISSUER, aud: AUDIENCE, exp })
    for (const round of [1, 2]) {
      const client = await connect(gateway.url('/lobby'), { token })
      t.equal((await backends.lobby.next('open', 'ada')).user, 'ada', `accepted before exp (${round})`)
      client.ws.close()
      await backends.lobby.next('close', 'ada')
    }
    await clockPast(exp * 1000 + 200)
    const late = await connect(gateway.url('/lobby'), { token })
    t.equal((await backends.lobby.next('open', 'ada')).user, 'ada', 'past exp but within the tolerance: still accepted')
    late.ws.close()
    await clockPast((exp + 3) * 1000 + 1100)
    const refused = await refusal(gateway.url('/lobby'), { token })
    t.equal(refused.status, 401, 'past exp + tolerance: 401')
    t.equal(JSON.parse(refused.body).code, 'GW_ERR_TOKEN_EXPIRED', 'as expired')
  })
}

t.test('a cached token with another signature is refused; a token not yet valid is not remembered as refused', async (t) => {
  const { backends, gateway } = await lobby(t, { verifyCacheSize: 10000 })
  const claims = { sub: 'bob', iss: ISSUER, aud: AUDIENCE, exp: now() + 600 }
  const good = signWith(SECRET, 'HS256', claims)
  await connect(gateway.url('/lobby'), { token: good })
  t.equal((await backends.lobby.next('open', 'bob')).user, 'bob', 'the genuine token is accepted (and now cached)')
  const forged = signWith('another-secret-entirely-000000000', 'HS256', claims)
  t.equal(forged.slice(0, forged.lastIndexOf('.')), good.slice(0, good.lastIndexOf('.')), 'same header and payload')
  const refused = await refusal(gateway.url('/lobby'), { token: forged })
  t.equal(refused.status, 401, 'the same claims under a wrong signature: 401')
  t.equal(JSON.parse(refused.body).code, 'GW_ERR_TOKEN_INVALID', 'as invalid')

  const nbf = now() + 2
  const early = signWith(SECRET, 'HS256', { sub: 'cy', iss: ISSUER, aud: AUDIENCE, nbf, exp: now() + 600 })
  t.equal((await refusal(gateway.url('/lobby'), { token: early })).status, 401, 'before nbf: 401')
  await clockPast(nbf * 1000 + 100)
  await connect(gateway.url('/lobby'), { token: early })
  t.equal((await backends.lobby.next('open', 'cy')).user, 'cy', 'after nbf the same token is accepted')
})

t.test('a refusal is not remembered: a token refused before nbf − clockToleranceSec passes once inside it', async (t) => {
  // fast-jwt would keep a refusal for clockTolerance ms (4 s here); the retry comes within 1-2.2 s of the refusal
  const { backends, gateway } = await lobby(t, { clockToleranceSec: 4, verifyCacheSize: 10000 })
  const nbf = now() + 6
  const early = signWith(SECRET, 'HS256', { sub: 'dee', iss: ISSUER, aud: AUDIENCE, nbf, exp: nbf + 600 })
  const refused = await refusal(gateway.url('/lobby'), { token: early })
  t.equal(refused.status, 401, 'more than the tolerance before nbf: 401')
  await clockPast(nbf * 1000 - 4000 + 200)
  await connect(gateway.url('/lobby'), { token: early })
  t.equal((await backends.lobby.next('open', 'dee')).user, 'dee', 'within the tolerance of nbf the same token is accepted')
})

t.test('a token too long to be remembered is verified every time: accepted while good, refused once forged', async (t) => {
  const { backends, gateway } = await lobby(t, { verifyCacheSize: 10000 })
  const claims = { sub: 'eve', iss: ISSUER, aud: AUDIENCE, exp: now() + 600, note: 'n'.repeat(MAX_CACHED_TOKEN_CHARS) }
  const token = signWith(SECRET, 'HS256', claims)
  t.ok(token.length > MAX_CACHED_TOKEN_CHARS, 'longer than the cache keeps')
  for (const round of [1, 2]) {
    const client = await connect(gateway.url('/lobby'), { token })
    t.equal((await backends.lobby.next('open', 'eve')).user, 'eve', `accepted (${round})`)
    client.ws.close()
    await backends.lobby.next('close', 'eve')
  }
  t.equal(await gateway.metric('gatehouse_token_cache_total', { result: 'hit' }), 0, 'never answered from the cache')
  t.equal(await gateway.metric('gatehouse_token_cache_total', { result: 'miss' }), 2, 'but verified both times')
  const forged = signWith('another-secret-entirely-000000000', 'HS256', claims)
  t.equal((await refusal(gateway.url('/lobby'), { token: forged })).status, 401, 'the same claims under a wrong signature: 401')
})

t.test('gatehouse_token_cache_total counts answers from the cache and from the verifier; nothing with the cache off', async (t) => {
  for (const verifyCacheSize of [10000, 0]) {
    const { backends, gateway } = await lobby(t, { verifyCacheSize })
    const token = signWith(SECRET, 'HS256', { sub: 'fay', iss: ISSUER, aud: AUDIENCE, exp: now() + 600 })
    for (const round of [1, 2, 3]) {
      const client = await connect(gateway.url('/lobby'), { token })
      t.equal((await backends.lobby.next('open', 'fay')).user, 'fay', `accepted (${round}, cache ${verifyCacheSize})`)
      client.ws.close()
      await backends.lobby.next('close', 'fay')
    }
    const wrong = signWith('another-secret-entirely-000000000', 'HS256', { sub: 'fay', iss: ISSUER, aud: AUDIENCE, exp: now() + 600 })
    t.equal((await refusal(gateway.url('/lobby'), { token: wrong })).status, 401, 'a wrong signature: 401')
    const hits = await gateway.metric('gatehouse_token_cache_total', { result: 'hit' })
    const misses = await gateway.metric('gatehouse_token_cache_total', { result: 'miss' })
    if (verifyCacheSize === 0) t.notMatch((await gateway.get('/metrics')).body, /^gatehouse_token_cache_total\{/m, 'cache off: no series at all')
    else t.same([hits, misses], [2, 2], 'cache on: two visits from the cache; the first and the refused token verified')
  }
})
