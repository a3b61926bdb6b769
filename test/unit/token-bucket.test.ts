/** TokenBucket: `rate` tokens a second, at most `burst` saved; the clock is passed in, so no test waits. */
import t from 'tap'
import { TokenBucket } from '../../src/sessions/token-bucket.js'
import { ConfigError, parseConfig } from '../../src/index.js'

/** How many of `tries` takes at time `now` succeed. */
function takes (bucket: TokenBucket, tries: number, now: number): number {
  let taken = 0
  for (let i = 0; i < tries; i++) if (bucket.take(now)) taken++
  return taken
}

t.test('a full bucket gives `burst` tokens at once, then refuses', async (t) => {
  const bucket = new TokenBucket(10, 5, 0)
  t.equal(takes(bucket, 5, 0), 5, 'the whole burst is available at start')
  t.notOk(bucket.take(0), 'the sixth take at the same instant is refused')
})

t.test('an empty bucket refills at `rate` a second', async (t) => {
  const bucket = new TokenBucket(10, 5, 0)
  takes(bucket, 5, 0)
  t.notOk(bucket.take(50), 'half a token after 50 ms is not enough')
  t.ok(bucket.take(100), 'one token after 100 ms at 10/s')
  t.notOk(bucket.take(100), 'and only one')
  t.equal(takes(bucket, 10, 400), 3, 'three more tokens after another 300 ms')
})

t.test('an idle bucket saves up at most `burst`', async (t) => {
  const bucket = new TokenBucket(10, 5, 0)
  takes(bucket, 5, 0)
  t.equal(takes(bucket, 100, 60_000), 5, 'a minute idle refills to the burst, not to 600')
})

t.test('a sustained client gets `rate` a second, not more', async (t) => {
  const bucket = new TokenBucket(50, 10, 0)
  let taken = 0
  for (let now = 0; now <= 10_000; now += 5) taken += takes(bucket, 1, now)
  t.equal(taken, 10 + 50 * 10, 'ten seconds at one try every 5 ms: the burst plus 50/s')
})

t.test('bad input: a clock that steps back mints no tokens', async (t) => {
  const bucket = new TokenBucket(10, 5, 1000)
  takes(bucket, 5, 1000)
  t.notOk(bucket.take(0), 'a second back in time gives nothing')
  t.notOk(bucket.take(1000), 'returning to the old time gives back only what the step back took')
  t.ok(bucket.take(1100), '100 ms forward from there refills one token, as usual')
})

/** The problems config reports for `limits`, or none. */
function problems (limits: Record<string, number>): string[] {
  const minimal = { auth: { secret: 's' }, endpoints: [{ name: 'lobby', path: '/lobby', backend: { url: 'ws://127.0.0.1:4001' } }] }
  try {
    parseConfig({ ...minimal, limits }, {})
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  return []
}

t.test('bad input: a rate or burst the bucket cannot use never reaches it (config refuses it, naming the field)', async (t) => {
  for (const limits of [{ messagesPerSecond: 0 }, { messagesPerSecond: -1 }, { burst: 0 }, { burst: 1.5 }] as Array<Record<string, number>>) {
    const field = Object.keys(limits)[0]
    t.ok(problems(limits).some((p) => p.includes(`limits.${field}`)), `limits ${JSON.stringify(limits)} is refused, naming limits.${field}`)
  }
  t.same(problems({ messagesPerSecond: 0.5, burst: 1 }), [], 'a slow rate and a burst of one are fine')
})
