/**
 * Red team of src/auth/verified-tokens.ts against fast-jwt itself: at every
 * edge of nbf and exp (with and without clock tolerance) the cache serves a
 * token exactly when fast-jwt, asked at that instant, would accept it; and
 * flooding it with distinct or oversized tokens never grows it past its size.
 */
import t from 'tap'
import { createSigner, createVerifier } from 'fast-jwt'
import { MAX_CACHED_TOKEN_CHARS, VerifiedTokens } from '../../src/auth/verified-tokens.js'

/** The verifier an entry is tagged with (any object will do here). */
const BY = {}

const KEY = 'unit-secret-long-enough-for-hs256-000000'

for (const toleranceMs of [0, 3000]) {
  t.test(`tolerance ${toleranceMs} ms: served exactly when fast-jwt accepts, at each edge of nbf and exp`, async (t) => {
    const exp = 2_000_000_000
    const nbf = exp - 60
    const claims = { sub: 'ada', nbf, exp }
    const token = createSigner({ key: KEY, algorithm: 'HS256', clockTimestamp: nbf * 1000 })(claims)
    const edges = [nbf * 1000 - toleranceMs - 1, nbf * 1000 - toleranceMs, nbf * 1000, exp * 1000, exp * 1000 + toleranceMs, exp * 1000 + toleranceMs + 1]
    for (const at of edges) {
      let accepted = true
      try {
        createVerifier({ key: KEY, algorithms: ['HS256'], clockTolerance: toleranceMs, clockTimestamp: at })(token)
      } catch {
        accepted = false
      }
      const cache = new VerifiedTokens<Record<string, unknown>>(10, toleranceMs)
      cache.add(token, claims, BY, nbf * 1000)
      t.equal(cache.get(token, BY, at) !== undefined, accepted, `at ${at - exp * 1000} ms from exp: ${accepted ? 'served' : 'refused'}, as fast-jwt`)
    }
  })
}

t.test('a flood of distinct, expired and oversized tokens never holds more than the size', async (t) => {
  const size = 50
  const cache = new VerifiedTokens<Record<string, unknown>>(size, 0)
  const now = 1_000_000_000_000
  for (let i = 0; i < 10_000; i++) cache.add(`token-${i}`, { sub: String(i), exp: i % 2 === 0 ? now / 1000 - 1 : now / 1000 + 60 }, BY, now)
  for (let i = 0; i < 100; i++) cache.add('x'.repeat(MAX_CACHED_TOKEN_CHARS + 1 + i), { sub: 'big' }, BY, now)
  t.equal(cache.size, size, `holds ${size} entries, not more`)
  t.equal(cache.get('token-9999', BY, now)?.sub, '9999', 'the newest is kept')
  t.equal(cache.get('token-0', BY, now), undefined, 'the oldest went')
  t.equal(cache.get('token-9998', BY, now), undefined, 'an expired one is never served')
})
