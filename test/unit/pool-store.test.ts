/**
 * Pools' shared state (src/cluster/pool-scripts.ts), one contract for two
 * stores: the Redis one (its Lua scripts, on a real redis-server) and the
 * in-memory one, which must answer alike. Then the scripts against data no
 * gateway wrote.
 */
import t from 'tap'
import { once } from 'node:events'
import { pino } from 'pino'
import { Redis } from 'ioredis'
import { MemoryHub } from '../../src/cluster/memory-transport.js'
import { RedisTransport } from '../../src/cluster/redis-transport.js'
import type { ClusterTransport } from '../../src/cluster/transport.js'
import { redisFor } from '../helpers/redis.js'

/** Connects `transport`, closed at teardown, and takes its node's lease: a node that has joined. */
async function joined<T extends ClusterTransport> (t: { teardown (fn: () => unknown): void }, transport: T): Promise<T> {
  t.teardown(async () => await transport.close())
  const up = once(transport, 'up')
  transport.connect()
  await up
  await transport.presence.renewLease()
  return transport
}

const server = await redisFor(t)
let namespaces = 0
const log = pino({ level: 'silent' })
type Nodes = (node: string) => Promise<ClusterTransport>

/** Each test gets a fresh namespace (Redis) or hub (memory); each node named is live (in the node set). */
const kinds: Record<string, (t: { teardown (fn: () => unknown): void }) => { nodes: Nodes, name: string }> = {
  redis: (t) => {
    const name = `pools${++namespaces}`
    return {
      name,
      nodes: async (node) => {
        const transport = new RedisTransport({ url: server.url, name, nodeId: node, presenceTtlMs: 60_000, log })
        return await joined(t, transport)
      }
    }
  },
  memory: (t) => {
    const hub = new MemoryHub()
    return {
      name: 'memory',
      nodes: async (node) => {
        const transport = hub.transport(node, 60_000)
        return await joined(t, transport)
      }
    }
  }
}

for (const [kind, make] of Object.entries(kinds)) {
  t.test(`${kind}: hold and release`, async (t) => {
    const { nodes } = make(t)
    const [a, b] = await Promise.all([nodes('a'), nodes('b')])
    t.equal(await a.pools.hold('game', 'k1', 'm1'), 'm1', 'the first hold assigns the proposed member')
    t.equal(await b.pools.hold('game', 'k1', 'm2'), 'm1', "a later hold gets the key's member, whatever it proposed")
    await a.pools.release('game', 'k1', 60_000)
    t.same(await a.pools.assigned('game', ['k1', 'nope']), ['m1', undefined], 'released by one holder, the key stays while another holds it')
    await b.pools.release('game', 'k1', 60_000)
    await a.pools.sweep('game', 60_000)
    t.same(await a.pools.assigned('game', ['k1']), ['m1'], 'released by the last holder, it lingers')
    t.equal(await b.pools.hold('game', 'k1', 'm2'), 'm1', 'held again within the linger: same member')
    await b.pools.release('game', 'k1', 0)
    t.same(await a.pools.assigned('game', ['k1']), [undefined], 'with lingerMs 0 the last release unassigns it')
    await a.pools.hold('game', 'k2', 'm1')
    await a.pools.release('game', 'k2', 1)
    await new Promise((resolve) => setTimeout(resolve, 20))
    await b.pools.sweep('game', 1)
    t.same(await a.pools.assigned('game', ['k2']), [undefined], 'a linger past its time is swept by any node')
  })

  t.test(`${kind}: holders that are dead nodes do not count`, async (t) => {
    const { nodes } = make(t)
    const [a, b] = await Promise.all([nodes('a'), nodes('b')])
    await a.pools.hold('game', 'k', 'm1')
    await b.pools.hold('game', 'k', 'm1')
    await a.presence.removeNode('b')
    await a.pools.release('game', 'k', 0)
    t.same(await a.pools.assigned('game', ['k']), [undefined], 'the last live holder released it: a dead holder keeps nothing')
    await b.pools.hold('game', 'k2', 'm1')
    await a.pools.sweep('game', 0)
    await a.pools.sweep('game', 0)
    t.same(await a.pools.assigned('game', ['k2']), [undefined], 'a key held only by a dead node lingers, then goes, on a sweep')
  })

  t.test(`${kind}: a failover is decided once, by a strict majority of live nodes`, async (t) => {
    const { nodes } = make(t)
    const [a, b] = await Promise.all([nodes('a'), nodes('b')])
    await a.pools.hold('game', 'k1', 'dead')
    await a.pools.hold('game', 'k2', 'dead')
    await a.pools.hold('game', 'k3', 'other')
    await a.pools.see('game', 'dead', true)
    t.same(await a.pools.decide('game', 'dead', 0), { outcome: 'wait' }, 'one node of two is no majority')
    await b.pools.see('game', 'dead', true)
    t.same(await b.pools.decide('game', 'dead', 60_000), { outcome: 'wait' }, 'both, but not down for failoverMs yet')
    const won = await b.pools.decide('game', 'dead', 0)
    t.same(won.outcome === 'won' ? won.keys.sort() : won, ['k1', 'k2'], 'both past failoverMs: the caller wins, with the keys to move')
    t.same(await a.pools.decide('game', 'dead', 0), { outcome: 'out' }, 'a second caller does not')
    t.same(await a.pools.outs('game'), ['dead'], 'the member is out')
    t.equal(await b.pools.move('game', 'dead', [['k1', 'x'], ['k2', 'x']]), 2, 'the winner moves its keys')
    t.equal(await a.pools.move('game', 'dead', [['k1', 'y'], ['k3', 'y']]), 0, 'a move of keys no longer on the dead member moves nothing')
    t.same(await a.pools.assigned('game', ['k1', 'k2', 'k3']), ['x', 'x', 'other'], 'each key moved once')
    t.same((await a.pools.keysOn('game', 'x')).sort(), ['k1', 'k2'], "keysOn lists a member's keys")
    await a.pools.see('game', 'dead', false)
    t.same(await a.pools.outs('game'), [], 'seen up by a node, it is no longer out')
    t.same(await b.pools.decide('game', 'dead', 0), { outcome: 'wait' }, 'and a new decision needs a majority again')
    await a.pools.see('game', 'dead', true)
    await a.presence.removeNode('b')
    await a.pools.see('game', 'dead', true)
    await a.presence.renewLease()
    await b.presence.renewLease()
    t.same(await a.pools.decide('game', 'dead', 0), { outcome: 'wait' }, "the view of a node that left the node set was dropped: b's vote is gone even once b is back")
  })

  t.test(`${kind}: run-time members' leases`, async (t) => {
    const { nodes } = make(t)
    const [a, b] = await Promise.all([nodes('a'), nodes('b')])
    const lease = (id: string, url: string): { id: string, url: string, href: string, weight: number } => ({ id, url, href: new URL(url).href, weight: 1 })
    t.same(await a.pools.register('game', lease('r1', 'ws://h:1/x'), 60_000, 2), { outcome: 'created' }, 'a new member: created')
    t.same(await b.pools.register('game', lease('r1', 'ws://h:1/x'), 60_000, 2), { outcome: 'renewed' }, 'the same through another node: renewed')
    t.same(await b.pools.register('game', lease('r1', 'ws://h:2/x'), 60_000, 2), { outcome: 'url_changed' }, 'another url for r1: refused')
    t.same(await b.pools.register('game', lease('r2', 'ws://h:1/x'), 60_000, 2), { outcome: 'url_in_use', holder: 'r1' }, "r1's url under another id: refused, naming r1")
    t.same(await b.pools.register('game', lease('r2', 'ws://h:2/x'), 60_000, 2), { outcome: 'created' }, 'a second member within maxMembers')
    t.same(await a.pools.register('game', lease('r3', 'ws://h:3/x'), 60_000, 2), { outcome: 'full' }, 'a third past maxMembers 2, counted across nodes')
    t.same((await b.pools.leases('game')).map((l) => l.id).sort(), ['r1', 'r2'], 'every node reads the same leases')
    await a.pools.hold('game', 'k1', 'r1')
    await a.pools.hold('game', 'k2', 'r1')
    t.same(await a.pools.drop('game', 'r1', true, [['k1', 'm0']]), { dropped: false, left: [] }, "an 'expire' of a lease not past its time ends nothing")
    t.same(await a.pools.drop('game', 'r1', false, [['k1', 'm0']]), { dropped: true, left: ['k2'] }, 'a DELETE ends it, moves the keys given, and names those left on it')
    t.same(await b.pools.drop('game', 'r1', false, []), { dropped: false, left: [] }, 'a second DELETE, through another node, ends nothing')
    t.same(await a.pools.assigned('game', ['k1', 'k2']), ['m0', 'r1'], 'k1 moved; k2 waits for its move')
    t.same(await a.pools.outs('game'), ['r1'], 'the member that left is out')
    await a.pools.register('game', lease('r4', 'ws://h:4/x'), 1, 2)
    await new Promise((resolve) => setTimeout(resolve, 20))
    t.same(await b.pools.expired('game'), ['r4'], 'a lease past its time is listed as expired')
    t.same(await b.pools.drop('game', 'r4', true, []), { dropped: true, left: [] }, 'and ended once, by the first node to see it')
    t.same(await a.pools.drop('game', 'r4', true, []), { dropped: false, left: [] }, 'not twice')
  })
}

t.test('redis: scripts over data no gateway wrote', async (t) => {
  const { nodes, name } = kinds.redis(t)
  const a = await nodes('a')
  const raw = new Redis(server.url)
  t.teardown(() => raw.disconnect())
  const key = (part: string): string => `${name}:pool:game:${part}`
  await raw.hset(key('h'), 'k', '{"not": "a list"}', 'k2', '[1, "a", {"x": 2}]', 'k3', 'garbage')
  await raw.hset(key('d'), 'm', '[1, 2, 3', 'm2', '{"a": "yesterday", "b": 5}')
  t.equal(await a.pools.hold('game', 'k', 'm1'), 'm1', 'holders that are not a list count as none')
  t.same(JSON.parse(await raw.hget(key('h'), 'k') ?? ''), ['a'], 'and are written back clean')
  t.equal(await a.pools.hold('game', 'k2', 'm1'), 'm1', 'a list with other things in it keeps only node ids')
  t.same(JSON.parse(await raw.hget(key('h'), 'k2') ?? ''), ['a'], 'written back with the node ids only (and this node)')
  await a.pools.see('game', 'm', true)
  t.equal(typeof JSON.parse(await raw.hget(key('d'), 'm') ?? '{}').a, 'number', 'views that do not decode are replaced')
  t.same(await a.pools.decide('game', 'm2', 0), { outcome: 'wait' }, 'a view that is not a time is no vote')
  await a.pools.sweep('game', 0)
  t.equal(await raw.hexists(key('h'), 'k3'), 0, 'holders of a key with no assignment are dropped by the sweep')
  await raw.hset(key('m'), 'bad', 'not json', 'noexp', '{"url": "ws://h:9", "weight": 1}', 'noweight', '{"url": "ws://h:8", "exp": 1}', 'late', '{"url": 5, "weight": -1, "exp": 99999999999999}')
  await raw.hset(key('m'), 'good', JSON.stringify({ url: 'ws://h:7', href: 'ws://h:7/', weight: 2, exp: 99999999999999 }))
  t.same(await a.pools.leases('game'), [{ id: 'good', url: 'ws://h:7', weight: 2 }], 'leases of another form are left out when read')
  t.same((await a.pools.expired('game')).sort(), ['bad', 'late', 'noexp', 'noweight'], 'leases of another form, or without a time still ahead, count as expired, so they are ended')
  t.same(await a.pools.register('game', { id: 'r', url: 'ws://h:9', href: 'ws://h:9/', weight: 1 }, 60_000, 2), { outcome: 'created' }, 'and do not count towards maxMembers nor hold a url')
  t.same(await a.pools.register('game', { id: 'r5', url: 'ws://h:5', href: 'ws://h:5/', weight: 1 }, 60_000, 2), { outcome: 'full' }, 'while a lease of the right form counts')
  const odd = 'k:ey "ü" \n{}'
  t.equal(await a.pools.hold('game', odd, 'member "ü" :x'), 'member "ü" :x', 'keys and member ids of any characters')
  t.same(await a.pools.assigned('game', [odd]), ['member "ü" :x'], 'stored as they are')
})
