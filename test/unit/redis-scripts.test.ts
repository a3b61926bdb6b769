/** The cluster's Lua scripts (src/cluster/redis-scripts.ts) run against a real redis-server, with the key layout that file documents. */
import t from 'tap'
import { Redis } from 'ioredis'
import { CLAIM, REAP, REASSERT, RELEASE } from '../../src/cluster/redis-scripts.js'
import { redisFor } from '../helpers/redis.js'

const server = await redisFor(t)
const redis = new Redis(server.url)
t.teardown(() => redis.disconnect())

interface Conn { id: string, node: string, since: number, params?: Record<string, string> }

let tests = 0
/** A fresh key prefix per test, so tests share nothing. */
function layout (): { prefix: string, presence: (field: string) => string, held: (node: string) => string, lease: (node: string) => string } {
  const prefix = `c${++tests}:`
  return { prefix, presence: (f) => `${prefix}p:${f}`, held: (n) => `${prefix}held:${n}`, lease: (n) => `${prefix}lease:${n}` }
}
type Layout = ReturnType<typeof layout>

const presenceJson = (c: Conn): string => JSON.stringify({ n: c.node, c: c.id, s: c.since })
const heldJson = (c: Conn): string => JSON.stringify({ c: c.id, s: c.since, p: c.params ?? {} })

/** The node a field's presence names ('' for none, or for a presence that is not JSON): what the caller passes as KEYS. */
async function nodeAt (k: Layout, field: string): Promise<string> {
  try {
    return (JSON.parse(await redis.get(k.presence(field)) ?? '{}') as { n?: string }).n ?? ''
  } catch {
    return ''
  }
}
/** A claim's KEYS: presence, my held, and the lease and held hash of the node `seen` in presence (mine for none). */
const around = (k: Layout, field: string, c: Conn, seen: string): string[] => {
  const other = seen === '' ? c.node : seen
  return [k.presence(field), k.held(c.node), k.lease(other), k.held(other)]
}
async function claim (k: Layout, field: string, c: Conn, policy: 'replace' | 'reject', seen?: string): Promise<unknown> {
  const node = seen ?? await nodeAt(k, field)
  return await redis.eval(CLAIM, 4, ...around(k, field, c, node), field, presenceJson(c), heldJson(c), policy, c.node, node)
}
async function reassert (k: Layout, field: string, c: Conn, policy: 'replace' | 'reject', seen?: string): Promise<unknown> {
  const node = seen ?? await nodeAt(k, field)
  return await redis.eval(REASSERT, 4, ...around(k, field, c, node), field, presenceJson(c), heldJson(c), policy, c.node, c.id, String(c.since), node)
}
/** REAP as the caller runs it: the dead node's fields read first, each one's presence key passed. */
async function reap (k: Layout, dead: string, me: string, fields?: string[]): Promise<unknown> {
  const names = fields ?? await redis.hkeys(k.held(dead))
  const keys = [k.held(dead), k.held(me), `${k.prefix}reaped:${dead}`, ...names.map((f) => k.presence(f))]
  return await redis.eval(REAP, keys.length, ...keys, me, ...names)
}
/** Registers `c` as the current connection of `field` (what a successful claim leaves behind). */
async function record (k: Layout, field: string, c: Conn): Promise<void> {
  await redis.set(k.presence(field), presenceJson(c))
  await redis.hset(k.held(c.node), field, heldJson(c))
}
const alive = async (k: Layout, node: string): Promise<unknown> => await redis.set(k.lease(node), '1', 'PX', 60_000)

const onA: Conn = { id: 'a#1', node: 'a', since: 100, params: { room: '1' } }
const onB: Conn = { id: 'b#1', node: 'b', since: 200 }

t.test('CLAIM of a free name records presence and my held entry', async (t) => {
  const k = layout()
  t.same(await claim(k, 'lobby:alice', onB, 'reject'), ['', 0, '', 1], 'no old presence: claimed')
  t.equal(await redis.get(k.presence('lobby:alice')), presenceJson(onB), 'presence names node b')
  t.equal(await redis.hget(k.held('b'), 'lobby:alice'), heldJson(onB), 'b\'s held hash has the entry')
})

t.test('CLAIM against a live node: reject refuses and writes nothing; replace takes over and leaves the old entry to its node', async (t) => {
  const k = layout()
  await alive(k, 'a')
  await record(k, 'lobby:alice', onA)
  t.same(await claim(k, 'lobby:alice', onB, 'reject'), [presenceJson(onA), 1, '', 0], 'reject: refused, old presence returned')
  t.equal(await redis.get(k.presence('lobby:alice')), presenceJson(onA), 'reject: presence still names a')
  t.equal(await redis.hexists(k.held('b'), 'lobby:alice'), 0, 'reject: nothing recorded for b')
  t.same(await claim(k, 'lobby:alice', onB, 'replace'), [presenceJson(onA), 1, heldJson(onA), 1], 'replace: claimed, with a\'s entry for the hand-off')
  t.equal(await redis.get(k.presence('lobby:alice')), presenceJson(onB), 'replace: presence names b')
  t.equal(await redis.hget(k.held('a'), 'lobby:alice'), heldJson(onA), 'replace: a\'s entry stays, a reports its own close')
})

t.test('CLAIM against a dead node takes its entry, so the claimer reports the close', async (t) => {
  const k = layout()
  await record(k, 'lobby:alice', onA)
  t.same(await claim(k, 'lobby:alice', onB, 'reject'), [presenceJson(onA), 0, heldJson(onA), 1], 'a has no lease: claimed even under reject, with a\'s entry')
  t.equal(await redis.hexists(k.held('a'), 'lobby:alice'), 0, 'the entry left a\'s held hash: no reaper reports it again')
  await redis.set(k.presence('lobby:bob'), presenceJson(onA))
  await redis.hset(k.held('a'), 'lobby:bob', heldJson({ ...onA, id: 'a#other' }))
  t.same(await claim(k, 'lobby:bob', onB, 'reject'), [presenceJson(onA), 0, '', 1], 'a dead node\'s entry for another connection is not taken')
  t.equal(await redis.hexists(k.held('a'), 'lobby:bob'), 1, 'and stays where it was')
})

t.test('CLAIM on my own node never checks a lease nor takes an entry', async (t) => {
  const k = layout()
  await record(k, 'lobby:alice', onB)
  const again: Conn = { ...onB, id: 'b#2', since: 300 }
  t.same(await claim(k, 'lobby:alice', again, 'reject'), [presenceJson(onB), 0, '', 1], 'my own old presence: claimed, the node settles it locally')
  t.equal(await redis.hget(k.held('b'), 'lobby:alice'), heldJson(again), 'my entry now names the new connection')
})

t.test('RELEASE forgets a connection only where it is still the one recorded', async (t) => {
  const k = layout()
  await record(k, 'lobby:alice', onB)
  await redis.eval(RELEASE, 2, k.presence('lobby:alice'), k.held('b'), 'lobby:alice', 'b#old')
  t.equal(await redis.get(k.presence('lobby:alice')), presenceJson(onB), 'a stale id leaves presence')
  t.equal(await redis.hexists(k.held('b'), 'lobby:alice'), 1, 'and the held entry')
  await redis.eval(RELEASE, 2, k.presence('lobby:alice'), k.held('b'), 'lobby:alice', onB.id)
  t.equal(await redis.exists(k.presence('lobby:alice')), 0, 'the current id removes presence')
  t.equal(await redis.hexists(k.held('b'), 'lobby:alice'), 0, 'and the held entry')
})

t.test('REAP takes over a dead node\'s current entries as tombstones of mine, skips superseded ones, marks the node reaped', async (t) => {
  const k = layout()
  const colon: Conn = { id: 'a#2', node: 'a', since: 150 }
  await record(k, 'lobby:alice', onA)
  await record(k, 'duel:x:y', colon)
  await record(k, 'lobby:bob', { id: 'a#3', node: 'a', since: 160 })
  await redis.set(k.presence('lobby:bob'), presenceJson({ id: 'c#9', node: 'c', since: 170 }))
  const taken = await reap(k, 'a', 'b') as string[]
  const pairs = new Map<string, string>()
  for (let i = 0; i < taken.length; i += 2) pairs.set(taken[i], taken[i + 1])
  t.same(pairs, new Map([['lobby:alice', heldJson(onA)], ['duel:x:y', heldJson(colon)]]), 'both current entries, field and held JSON; bob moved to c and is skipped')
  t.same(JSON.parse(await redis.get(k.presence('lobby:alice')) ?? ''), { n: 'b', c: 'reap:a#1', s: 100 }, 'presence is now my tombstone')
  t.same(JSON.parse(await redis.hget(k.held('b'), 'lobby:alice') ?? ''), { c: 'reap:a#1', s: 100, p: { room: '1' } }, 'and my held entry, params kept')
  t.equal(await redis.get(k.presence('lobby:bob')), presenceJson({ id: 'c#9', node: 'c', since: 170 }), 'bob\'s presence on c is untouched')
  t.equal(await redis.exists(k.held('a')), 0, 'the dead node\'s held hash is gone')
  t.ok(await redis.ttl(`${k.prefix}reaped:a`) > 0, 'the dead node is marked reaped, with an expiry')
})

t.test('REASSERT settles a live conflict by policy and since; takes a dead node\'s entry; ignores my own tombstone', async (t) => {
  const k = layout()
  await alive(k, 'a')
  await record(k, 'lobby:alice', onA)
  t.same(await reassert(k, 'lobby:alice', onB, 'reject'), ['lost', presenceJson(onA), ''], 'reject: the older connection (a) wins')
  t.equal(await redis.get(k.presence('lobby:alice')), presenceJson(onA), 'lost: presence unchanged')
  t.same(await reassert(k, 'lobby:alice', onB, 'replace'), ['won', presenceJson(onA), ''], 'replace: the newer connection (b) wins')
  t.equal(await redis.get(k.presence('lobby:alice')), presenceJson(onB), 'won: presence names b')
  await alive(k, 'b')
  const older: Conn = { id: 'a#0', node: 'a', since: 50 }
  t.same(await reassert(k, 'lobby:alice', older, 'replace'), ['lost', presenceJson(onB), ''], 'replace: an older connection loses')

  await record(k, 'lobby:carol', { id: 'd#1', node: 'd', since: 10 })
  t.same(await reassert(k, 'lobby:carol', onB, 'reject'), ['set', '', heldJson({ id: 'd#1', node: 'd', since: 10 })], 'a dead node: set, with its entry to report')
  t.equal(await redis.hexists(k.held('d'), 'lobby:carol'), 0, 'and the entry left the dead node\'s hash')

  await redis.set(k.presence('lobby:dave'), JSON.stringify({ n: 'c', c: `reap:${onB.id}`, s: onB.since }))
  await alive(k, 'c')
  t.same(await reassert(k, 'lobby:dave', onB, 'reject'), ['set', '', ''], 'a reaper\'s tombstone of my own connection is no conflict')
})

t.test('bad input: garbage in Redis keys makes a script fail without writing anything', async (t) => {
  const k = layout()
  await redis.set(k.presence('lobby:alice'), 'not json{')
  await t.rejects(claim(k, 'lobby:alice', onB, 'replace'), 'CLAIM over an unreadable presence fails')
  t.equal(await redis.get(k.presence('lobby:alice')), 'not json{', 'the presence is left as it was')
  t.equal(await redis.exists(k.held('b')), 0, 'and nothing was recorded for b')

  await redis.hset(k.presence('lobby:bob'), 'x', 'y')
  await t.rejects(claim(k, 'lobby:bob', onB, 'replace'), /WRONGTYPE/, 'a presence key of the wrong type fails with WRONGTYPE')

  await redis.set(k.presence('lobby:carol'), presenceJson(onB))
  await redis.hset(k.held('b'), 'lobby:carol', '{"broken"')
  await t.rejects(redis.eval(RELEASE, 2, k.presence('lobby:carol'), k.held('b'), 'lobby:carol', 'b#stale'), 'RELEASE over an unreadable held entry fails')
  t.equal(await redis.get(k.presence('lobby:carol')), presenceJson(onB), 'and a stale id still deletes no presence')

  t.same(await reap(k, 'never-seen', 'b'), [], 'REAP of a node that held nothing takes nothing')
})

t.test('every key a script touches comes in KEYS: a script that finds its keys out of date changes nothing and returns nil', async (t) => {
  const k = layout()
  await alive(k, 'a')
  await record(k, 'lobby:alice', onA)
  t.equal(await claim(k, 'lobby:alice', onB, 'replace', ''), null, 'CLAIM read no presence, but a holds the user by now: nil')
  t.equal(await claim(k, 'lobby:alice', onB, 'replace', 'c'), null, 'CLAIM read node c there: nil')
  t.equal(await redis.get(k.presence('lobby:alice')), presenceJson(onA), 'presence untouched')
  t.equal(await redis.hexists(k.held('b'), 'lobby:alice'), 0, 'nothing recorded for b')
  t.equal(await reassert(k, 'lobby:alice', onB, 'replace', 'c'), null, 'REASSERT read node c there: nil')
  t.equal(await redis.get(k.presence('lobby:alice')), presenceJson(onA), 'presence still untouched')

  await record(k, 'lobby:bob', { id: 'a#2', node: 'a', since: 110 })
  t.equal(await reap(k, 'a', 'b', ['lobby:alice']), null, 'REAP told of fewer fields than the dead node holds: nil')
  t.equal(await reap(k, 'a', 'b', ['lobby:alice', 'lobby:carol']), null, 'REAP told of a field it does not hold: nil')
  t.equal(await redis.hlen(k.held('a')), 2, 'the dead node\'s records are untouched')
  t.equal(await redis.exists(`${k.prefix}reaped:a`), 0, 'and it is not marked reaped')
  t.equal((await reap(k, 'a', 'b') as string[]).length, 4, 'with its fields as they are, REAP takes both')
})

t.test('every key a script touches is one of its KEYS, never built inside the script', async (t) => {
  for (const [name, lua] of Object.entries({ CLAIM, RELEASE, REAP, REASSERT })) {
    // locals that hold a KEYS entry count as keys too
    const aliases = [...lua.matchAll(/local (\w+) = KEYS\[/g)].map((m) => m[1])
    const calls = [...lua.matchAll(/redis\.call\('(\w+)', ([^,)]+)/g)]
    t.ok(calls.length > 0, `${name} calls redis`)
    for (const [call, command, key] of calls) {
      t.ok(key.startsWith('KEYS[') || aliases.includes(key), `${name}: ${command} names its key from KEYS (${call})`)
    }
  }
})
