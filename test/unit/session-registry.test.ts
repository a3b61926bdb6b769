/** SessionRegistry: one session per (endpoint, user); a duplicate is settled by the endpoint's policy, `replace` or `reject`. */
import t from 'tap'
import { SessionRegistry } from '../../src/sessions/registry.js'
import type { ClientSession } from '../../src/sessions/client-session.js'

/** The registry reads only `user` and `isHeld` of a session. */
function session (user: string, isHeld = false): ClientSession {
  return { user, isHeld } as unknown as ClientSession
}

t.test('replace: a second session of a user displaces the first', async (t) => {
  const registry = new SessionRegistry('replace')
  const first = session('alice')
  const second = session('alice')
  t.same(registry.register(first), { registered: true }, 'the first is registered, displacing nobody')
  t.notOk(registry.refuses('alice'), 'replace never refuses')
  const entry = registry.register(second)
  t.ok(entry.registered && entry.displaced === first, 'the second is registered and hands back the first to close')
  t.equal(registry.get('alice'), second, 'the second is current')
  t.equal(registry.size, 1, 'one session per user')
})

t.test('reject: a second session of a connected user is refused, the first stays', async (t) => {
  const registry = new SessionRegistry('reject')
  const first = session('alice')
  registry.register(first)
  t.ok(registry.refuses('alice'), 'a new connection of alice would be refused (409)')
  t.notOk(registry.refuses('bob'), 'bob is not connected: not refused')
  t.same(registry.register(session('alice')), { registered: false }, 'a duplicate registered anyway is refused')
  t.equal(registry.get('alice'), first, 'the first is still current')
})

t.test('reject: a held session is the user\'s to resume, never a duplicate', async (t) => {
  const registry = new SessionRegistry('reject')
  registry.register(session('alice', true))
  t.notOk(registry.refuses('alice'), 'a held session does not make alice a duplicate')
})

t.test('remove forgets a session only while it is the user\'s current one', async (t) => {
  const registry = new SessionRegistry('replace')
  const first = session('alice')
  const second = session('alice')
  registry.register(first)
  registry.register(second)
  t.notOk(registry.remove(first), 'the late close of a replaced session removes nothing')
  t.equal(registry.get('alice'), second, 'its successor stays')
  t.ok(registry.remove(second), 'the current session is removed')
  t.equal(registry.size, 0, 'nothing left')
})

t.test('bad input: the same session registered twice, and a session never registered removed', async (t) => {
  const registry = new SessionRegistry('reject')
  const alice = session('alice')
  registry.register(alice)
  t.same(registry.register(alice), { registered: false }, 'reject: the same session again is a duplicate too')
  t.notOk(registry.remove(session('nobody')), 'removing an unknown user removes nothing')
  t.notOk(registry.remove(session('alice')), 'removing another session of alice removes nothing')
  t.equal(registry.get('alice'), alice, 'alice\'s session stays')
  t.same([...registry.values()], [alice], 'values lists only alice\'s session')
})
