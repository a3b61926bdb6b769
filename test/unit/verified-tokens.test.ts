/**
 * The verified-token cache (src/auth/verified-tokens.ts) on a clock of its
 * own: bounds by count and token length, least recently used out first, and
 * an entry serving only inside its token's nbf/exp window (with the
 * tolerance) and for at most MAX_AGE_MS. Through a real gateway:
 * test/auth-cache.test.ts.
 */
import t from 'tap'
import { cachedVerify, MAX_AGE_MS, MAX_CACHED_TOKEN_CHARS, VerifiedTokens } from '../../src/auth/verified-tokens.js'

/** The verifier an entry is tagged with (any object will do here). */
const BY = {}

const T0 = 1_800_000_000_000
const sec = (ms: number): number => Math.floor(ms / 1000)

t.test('a token is served only inside nbf − tolerance … exp + tolerance, and for at most MAX_AGE_MS', async (t) => {
  const cache = new VerifiedTokens(10, 2000)
  const claims = { sub: 'ada', nbf: sec(T0) + 5, exp: sec(T0) + 60 }
  cache.add('tok', claims, BY, T0)
  t.equal(cache.get('tok', BY, T0 + 2999), undefined, 'more than the tolerance before nbf: not served')
  cache.add('tok', claims, BY, T0)
  t.equal(cache.get('tok', BY, T0 + 3000), claims, 'within the tolerance of nbf: served')
  t.equal(cache.get('tok', BY, T0 + 62000), claims, 'at exp + tolerance: served')
  t.equal(cache.get('tok', BY, T0 + 62001), undefined, 'past exp + tolerance: not served')
  t.equal(cache.get('tok', BY, T0 + 3000), undefined, 'and forgotten then')

  const forever = { sub: 'bob' }
  cache.add('no-exp', forever, BY, T0)
  t.equal(cache.get('no-exp', BY, T0 + MAX_AGE_MS), forever, 'without exp: served until MAX_AGE_MS')
  t.equal(cache.get('no-exp', BY, T0 + MAX_AGE_MS + 1), undefined, 'and not after')
})

t.test('bounded: the least recently used goes first; long tokens and size 0 are not kept', async (t) => {
  const cache = new VerifiedTokens(2, 0)
  cache.add('a', { sub: 'a' }, BY, T0)
  cache.add('b', { sub: 'b' }, BY, T0)
  t.ok(cache.get('a', BY, T0), 'a is used, so b is now the least recent')
  cache.add('c', { sub: 'c' }, BY, T0)
  t.equal(cache.get('b', BY, T0), undefined, 'b made room for c')
  t.ok(cache.get('a', BY, T0) !== undefined && cache.get('c', BY, T0) !== undefined, 'a and c are kept')

  const long = 'x'.repeat(MAX_CACHED_TOKEN_CHARS + 1)
  cache.add(long, { sub: 'long' }, BY, T0)
  t.equal(cache.get(long, BY, T0), undefined, `a token over ${MAX_CACHED_TOKEN_CHARS} characters is not kept`)
  t.ok(cache.get('a', BY, T0) !== undefined && cache.get('c', BY, T0) !== undefined, 'nor does it push anything out')

  const off = new VerifiedTokens(0, 0)
  off.add('a', { sub: 'a' }, BY, T0)
  t.equal(off.get('a', BY, T0), undefined, 'size 0 keeps nothing')
})

t.test('cachedVerify verifies a token once, and every time after a refusal', async (t) => {
  const verified: string[] = []
  const counts = { hits: 0, misses: 0 }
  const verify = cachedVerify((token: string) => {
    verified.push(token)
    if (token === 'bad') throw new Error('signature')
    return { sub: token, exp: sec(Date.now()) + 60 }
  }, new VerifiedTokens(10, 0), counts)
  t.same(verify('good'), verify('good'), 'the same claims twice')
  t.throws(() => verify('bad'), /signature/, 'a refusal is thrown')
  t.throws(() => verify('bad'), /signature/, 'and thrown again')
  t.same(verified, ['good', 'bad', 'bad'], 'the good token was verified once; the bad one each time')
  t.same(counts, { hits: 1, misses: 3 }, 'one answer from the cache, three from the verifier')
})

t.test('an entry is served only through the verifier that accepted it', async (t) => {
  const cache = new VerifiedTokens(10, 0)
  const keyA = {}
  const keyB = {}
  cache.add('tok', { sub: 'ada' }, keyA, T0)
  t.equal(cache.get('tok', keyB, T0), undefined, 'asked through another key: not served')
  t.equal(cache.get('tok', keyA, T0), undefined, 'and that miss forgets it, so a key that lost its kid cannot get it back')
})
