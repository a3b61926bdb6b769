/** Weighted rendezvous hashing (src/pool/hrw.ts) and routing keys (src/pool/routing-key.ts): pure, no sockets. */
import t from 'tap'
import { pick, score } from '../../src/pool/hrw.js'
import { routeKeyOf } from '../../src/pool/routing-key.js'

const keys = Array.from({ length: 6000 }, (_, i) => `match-${i}`)
const a = { id: 'a', weight: 1 }
const b = { id: 'b', weight: 1 }
const c = { id: 'c', weight: 2 }

function owners (members: Array<{ id: string, weight: number }>): Map<string, string> {
  return new Map(keys.map((k) => [k, (pick(k, members) as { id: string }).id]))
}

t.test('a score depends only on the key and the member, and is positive', async (t) => {
  t.equal(score('k', a), score('k', { ...a }), 'the same input, the same score')
  t.not(score('k', a), score('k', b), 'another member, another score')
  t.ok(score('k', a) > 0, 'scores are positive')
  t.equal(score('k', { id: 'a', weight: 2 }), 2 * score('k', a), 'a weight scales the score')
})

t.test('keys spread over members in proportion to their weights', async (t) => {
  const counts = new Map<string, number>()
  for (const id of owners([a, b, c]).values()) counts.set(id, (counts.get(id) ?? 0) + 1)
  const share = (id: string): number => (counts.get(id) ?? 0) / keys.length
  t.ok(Math.abs(share('a') - 0.25) < 0.03, `a (weight 1) wins about a quarter: ${share('a')}`)
  t.ok(Math.abs(share('b') - 0.25) < 0.03, `b (weight 1) wins about a quarter: ${share('b')}`)
  t.ok(Math.abs(share('c') - 0.5) < 0.03, `c (weight 2) wins about half: ${share('c')}`)
})

t.test('removing a member moves only its keys; adding one moves keys only to it', async (t) => {
  const before = owners([a, b, c])
  const without = owners([a, b])
  const moved = keys.filter((k) => before.get(k) !== without.get(k))
  t.ok(moved.length > 0, 'some keys moved')
  t.ok(moved.every((k) => before.get(k) === 'c'), 'only the removed member\'s keys moved')
  const d = { id: 'd', weight: 1 }
  const withD = owners([a, b, c, d])
  const gained = keys.filter((k) => before.get(k) !== withD.get(k))
  t.ok(gained.length > 0, 'the new member wins some keys')
  t.ok(gained.every((k) => withD.get(k) === 'd'), 'every key that moved went to the new member')
})

t.test('the order of the candidates does not matter; none gives undefined', async (t) => {
  t.same(owners([c, b, a]), owners([a, b, c]), 'same owners whatever the order')
  t.equal(pick('k', []), undefined, 'no candidate, no owner')
})

t.test('routing keys: user, a path parameter, a claim by dotted path', async (t) => {
  const client = { user: 'u1', claims: { team: 'red', org: { id: 7, name: '' }, list: ['x'] }, params: { matchId: 'm1', empty: '' } }
  t.equal(routeKeyOf('user')(client), 'u1', 'user: the user id')
  t.equal(routeKeyOf('params.matchId')(client), 'm1', 'a path parameter')
  t.equal(routeKeyOf('claims.team')(client), 'red', 'a claim')
  t.equal(routeKeyOf('claims.org.id')(client), '7', 'a nested numeric claim, as text')
  t.equal(routeKeyOf('params.empty')(client), undefined, 'an empty parameter is no key')
  t.equal(routeKeyOf('params.missing')(client), undefined, 'a missing parameter is no key')
  t.equal(routeKeyOf('claims.org.name')(client), undefined, 'an empty claim is no key')
  t.equal(routeKeyOf('claims.org')(client), undefined, 'an object claim is no key')
  t.equal(routeKeyOf('claims.list')(client), undefined, 'an array claim is no key')
  t.equal(routeKeyOf('claims.team.deeper')(client), undefined, 'a path through a string is no key')
  t.equal(routeKeyOf('claims.__proto__')(client), undefined, 'the prototype is no key')
})
