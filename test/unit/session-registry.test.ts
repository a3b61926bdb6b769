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
  t.same(registry.admit(first), { admitted: true }, 'the first is admitted, displacing nobody')
  t.notOk(registry.refuses('alice'), 'replace never refuses')
  const admission = registry.admit(second)
  t.ok(admission.admitted && admission.displaced === first, 'the second is admitted and hands back the first to close')
  t.equal(registry.get('alice'), second, 'the second is current')
  t.equal(registry.size, 1, 'one session per user')
})

t.test('reject: a second session of a connected user is refused, the first stays', async (t) => {
  const registry = new SessionRegistry('reject')
  const first = session('alice')
  registry.admit(first)
  t.ok(registry.refuses('alice'), 'a new connection of alice would be refused (409)')
  t.notOk(registry.refuses('bob'), 'bob is not connected: not refused')
  t.same(registry.admit(session('alice')), { admitted: false }, 'a duplicate admitted anyway is refused')
  t.equal(registry.get('alice'), first, 'the first is still current')
})

t.test('reject: a held session is the user\'s to resume, never a duplicate', async (t) => {
  const registry = new SessionRegistry('reject')
  registry.admit(session('alice', true))
  t.notOk(registry.refuses('alice'), 'a held session does not make alice a duplicate')
})

t.test('remove forgets a session only while it is the user\'s current one', async (t) => {
  const registry = new SessionRegistry('replace')
  const first = session('alice')
  const second = session('alice')
  registry.admit(first)
  registry.admit(second)
  t.notOk(registry.remove(first), 'the late close of a replaced session removes nothing')
  t.equal(registry.get('alice'), second, 'its successor stays')
  t.ok(registry.remove(second), 'the current session is removed')
  t.equal(registry.size, 0, 'nothing left')
})

t.test('bad input: the same session admitted twice, and a session never admitted removed', async (t) => {
  const registry = new SessionRegistry('reject')
  const alice = session('alice')
  registry.admit(alice)
  t.same(registry.admit(alice), { admitted: false }, 'reject: the same session again is a duplicate too')
  t.notOk(registry.remove(session('nobody')), 'removing an unknown user removes nothing')
  t.notOk(registry.remove(session('alice')), 'removing another session of alice removes nothing')
  t.equal(registry.get('alice'), alice, 'alice\'s session stays')
  t.same([...registry.values()], [alice], 'values lists only alice\'s session')
})
