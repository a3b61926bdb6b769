/**
 * One contract, two stores: the Redis store (its Lua scripts, against a
 * real redis-server) and the in-memory one the cluster-logic tests run on
 * must answer every scenario alike, so those tests stand for the real thing.
 */
import t from 'tap'
import { once } from 'node:events'
import { pino } from 'pino'
import type { DuplicatePolicy } from '../../src/domain.js'
import { MemoryHub } from '../../src/cluster/memory-transport.js'
import { RedisTransport } from '../../src/cluster/redis-transport.js'
import type { PresenceStore, Registration } from '../../src/cluster/transport.js'
import { redisFor } from '../helpers/redis.js'

type Stores = (node: string) => Promise<PresenceStore>

const server = await redisFor(t)
let namespaces = 0
const log = pino({ level: 'silent' })

/** Each test gets a fresh store for each node it names, on a fresh namespace (Redis) or hub (memory). */
const kinds: Record<string, (t: { teardown (fn: () => unknown): void }) => Stores> = {
  redis: (t) => {
    const name = `contract${++namespaces}`
    return async (node) => {
      const transport = new RedisTransport({ url: server.url, name, nodeId: node, presenceTtlMs: 60_000, log })
      t.teardown(async () => await transport.close())
      const up = once(transport, 'up')
      transport.connect()
      await up
      return transport.presence
    }
  },
  memory: (t) => {
    const hub = new MemoryHub()
    return async (node) => {
      const transport = hub.transport(node, 60_000)
      t.teardown(async () => await transport.close())
      const up = once(transport, 'up')
      transport.connect()
      await up
      return transport.presence
    }
  }
}

let issued = 0
function registration (node: string, user: string, since: number): Registration {
  const id = `${node}#${++issued}`
  return { field: `lobby:${user}`, presence: { n: node, c: id, s: since }, record: { c: id, s: since, p: { room: user } } }
}

for (const [kind, storesFor] of Object.entries(kinds)) {
  t.test(`${kind}: claims`, async (t) => {
    const stores = storesFor(t)
    const [a, b] = await Promise.all([stores('a'), stores('b')])
    await a.renewLease()
    const onA = registration('a', 'alice', 100)
    t.same(await a.claim(onA, 'reject'), { claimed: true, old: undefined, alive: false, entry: undefined }, 'a free user is claimed')
    t.same(await a.lookup(['lobby:alice', 'lobby:nobody']), [onA.presence, undefined], 'presence names a; nobody has none')
    const onB = registration('b', 'alice', 200)
    t.same(await b.claim(onB, 'reject'), { claimed: false, old: onA.presence, alive: true, entry: undefined }, 'reject over a live node: refused')
    t.same(await b.claim(onB, 'replace'), { claimed: true, old: onA.presence, alive: true, entry: onA.record }, 'replace over a live node: claimed, with a\'s record for the hand-off')
    t.same([...(await a.recordsHere()).keys()], ['lobby:alice'], 'a keeps its record: a reports its own close')

    const bob = registration('b', 'bob', 300)
    await b.claim(bob, 'replace')
    const again = registration('a', 'bob', 400)
    t.same(await a.claim(again, 'reject'), { claimed: true, old: bob.presence, alive: false, entry: bob.record }, 'over a dead node (b holds no lease): claimed even under reject, with b\'s record')
    t.equal((await b.recordsHere()).has('lobby:bob'), false, 'and b\'s record is gone: no reaper reports it again')
    const mine = registration('a', 'bob', 500)
    t.same(await a.claim(mine, 'reject'), { claimed: true, old: again.presence, alive: false, entry: undefined }, 'over my own connection: claimed, nothing to hand off')
  })

  t.test(`${kind}: release`, async (t) => {
    const stores = storesFor(t)
    const a = await stores('a')
    const live = registration('a', 'carol', 100)
    const handshake = registration('a', 'carol', 200)
    await a.claim(live, 'replace')
    await a.claim(handshake, 'replace')
    await a.release(handshake.field, live.presence.c)
    t.same(await a.lookup([handshake.field]), [handshake.presence], 'a stale id releases nothing')
    await a.release(handshake.field, handshake.presence.c, live)
    t.same(await a.lookup([live.field]), [live.presence], 'with a holder: the holder is registered again')
    t.same((await a.recordsHere()).get(live.field), live.record, 'and recorded again')
    await a.release(live.field, live.presence.c)
    t.same(await a.lookup([live.field]), [undefined], 'the current id is released')
    t.equal((await a.recordsHere()).size, 0, 'with its record')
  })

  t.test(`${kind}: reassert after an outage`, async (t) => {
    const stores = storesFor(t)
    const [a, b] = await Promise.all([stores('a'), stores('b')])
    await Promise.all([a.renewLease(), b.renewLease()])
    const check = async (policy: DuplicatePolicy, user: string, mineSince: number): Promise<unknown> => {
      const theirs = registration('a', user, 1000)
      await a.claim(theirs, 'replace')
      const found = await b.reassert(registration('b', user, mineSince), policy)
      return { ...found, other: found.other?.c === theirs.presence.c }
    }
    t.same(await check('replace', 'u1', 2000), { result: 'won', other: true, entry: undefined }, 'replace: the newer wins')
    t.same(await check('replace', 'u2', 500), { result: 'lost', other: true, entry: undefined }, 'replace: the older loses')
    t.same(await check('reject', 'u3', 2000), { result: 'lost', other: true, entry: undefined }, 'reject: the newer loses')
    t.same(await check('reject', 'u4', 500), { result: 'won', other: true, entry: undefined }, 'reject: the older wins')

    const dead = await stores('d')
    const gone = registration('d', 'dave', 100)
    await dead.claim(gone, 'replace')
    t.same(await b.reassert(registration('b', 'dave', 50), 'reject'), { result: 'set', other: undefined, entry: gone.record }, 'a dead node\'s user: set, with its record to report')
  })

  t.test(`${kind}: leases and reaping`, async (t) => {
    const stores = storesFor(t)
    const [a, b] = await Promise.all([stores('a'), stores('b')])
    await Promise.all([a.renewLease(), b.renewLease()])
    t.same((await b.otherNodes()).sort(), ['a'], 'b sees a')
    t.equal(await b.isAlive('a'), true, 'alive while its lease holds')
    const alice = registration('a', 'alice', 100)
    const moved = registration('a', 'bob', 110)
    await a.claim(alice, 'replace')
    await a.claim(moved, 'replace')
    await a.leave()
    t.equal(await b.isAlive('a'), false, 'a left: no lease')
    t.same(await b.otherNodes(), [], 'nor a place in the set')

    const dead = await stores('d')
    await dead.renewLease()
    const d1 = registration('d', 'carol', 100)
    const d2 = registration('d', 'dave', 200)
    await dead.claim(d1, 'replace')
    await dead.claim(d2, 'replace')
    const over = registration('b', 'dave', 300)
    await b.claim(over, 'replace')
    t.equal(await b.removeNode('d'), true, 'the first to take d out of the set reaps it')
    t.equal(await a.removeNode('d'), false, 'the second does not')
    t.same(await b.reap('d'), [['lobby:carol', d1.record]], 'reaps the user d still had; dave moved to b and is skipped')
    t.same(await b.lookup(['lobby:carol']), [{ n: 'b', c: `reap:${d1.presence.c}`, s: 100 }], 'carol\'s presence is b\'s tombstone')
    t.same((await b.recordsHere()).get('lobby:carol'), { c: `reap:${d1.presence.c}`, s: 100, p: { room: 'carol' } }, 'recorded by b, params kept')
    t.equal((await dead.recordsHere()).size, 0, 'd\'s records are gone')
    t.equal(await dead.takeReapedMark(), true, 'd, back, finds it was reaped')
    t.equal(await dead.takeReapedMark(), false, 'once')
    t.same(await b.reap('never-seen'), [], 'a node that had nothing: nothing to reap')
  })
}
