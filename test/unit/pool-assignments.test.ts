/** Sticky key → member assignments (src/pool/assignments.ts): linger timers are real, and awaited. */
import t from 'tap'
import { once, EventEmitter } from 'node:events'
import { Assignments } from '../../src/pool/assignments.js'

function assignments (lingerMs: number): { table: Assignments, released: EventEmitter, log: string[] } {
  const released = new EventEmitter()
  const log: string[] = []
  const table = new Assignments({
    lingerMs,
    changed: () => {},
    released: (key, member) => {
      log.push(`${key}@${member}`)
      released.emit('released', key, member)
    }
  })
  return { table, released, log }
}

t.test('a key is assigned once, by its first client, and stays while it has clients', async (t) => {
  const { table } = assignments(0)
  let chosen = 0
  const choose = (): string => { chosen++; return chosen === 1 ? 'a' : 'b' }
  t.equal(table.join('k', choose), 'a', 'the first client assigns the key')
  t.equal(table.join('k', choose), 'a', 'the second one finds it assigned')
  t.equal(chosen, 1, 'choose ran once')
  t.same(table.loadOf('a'), { keys: 1, clients: 2 }, 'one key, two clients')
  table.leave('k')
  t.equal(table.memberOf('k'), 'a', 'one client left: still assigned')
  table.leave('k')
  t.equal(table.memberOf('k'), undefined, 'lingerMs 0: released with its last client')
  t.same(table.loadOf('a'), { keys: 0, clients: 0 }, 'nothing left on a')
  table.leave('k')
  t.same(table.loadOf('a'), { keys: 0, clients: 0 }, 'a leave too many changes nothing')
})

t.test('a key lingers after its last client, and a client back in time keeps it', async (t) => {
  const { table, released, log } = assignments(50)
  table.join('k', () => 'a')
  table.leave('k')
  t.equal(table.memberOf('k'), 'a', 'lingering')
  table.join('k', () => 'b')
  t.equal(table.memberOf('k'), 'a', 'back within lingerMs: same member')
  table.leave('k')
  const [key, member] = await once(released, 'released')
  t.same([key, member], ['k', 'a'], 'released once the linger ran out')
  t.same(log, ['k@a'], 'released exactly once: the cancelled linger never fired')
  t.equal(table.join('k', () => 'b'), 'b', 'a released key is assigned afresh')
  table.clear()
})

t.test('move re-homes a key with its clients; keysOf lists a member\'s keys', async (t) => {
  const { table } = assignments(1000)
  table.join('k1', () => 'a')
  table.join('k1', () => 'a')
  table.join('k2', () => 'a')
  table.join('k3', () => 'b')
  t.same(table.keysOf('a'), ['k1', 'k2'], 'a holds k1 and k2')
  table.move('k1', 'c')
  t.equal(table.memberOf('k1'), 'c', 'k1 moved')
  t.same(table.loadOf('a'), { keys: 1, clients: 1 }, 'a lost k1 and its two clients')
  t.same(table.loadOf('c'), { keys: 1, clients: 2 }, 'c has them')
  table.move('nothing', 'c')
  t.same(table.loadOf('c'), { keys: 1, clients: 2 }, 'moving an unknown key does nothing')
  table.clear()
})
