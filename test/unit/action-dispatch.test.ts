/**
 * ActionDispatch (src/relay/action-dispatch.ts) over a real SessionRegistry
 * holding more sessions than any test could open sockets for: a send to
 * `all` must reach every one of them (spreading them into one call's
 * arguments overflowed the stack past ~100,000). Stand-in sessions take the
 * frames; sockets and the wire are covered by test/relay.test.ts.
 */
import t from 'tap'
import { pino } from 'pino'
import type { ClientAction } from '../../protocol/index.js'
import { GatewayMetrics } from '../../src/metrics.js'
import { ActionDispatch } from '../../src/relay/action-dispatch.js'
import type { ClientSession, DeliveryOutcome } from '../../src/sessions/client-session.js'
import { SessionRegistry } from '../../src/sessions/registry.js'

/** A session as the registry and dispatch read it, counting what it is handed. */
function session (user: string, frames: Map<string, number>): ClientSession {
  return {
    user,
    isHeld: false,
    deliver: (): DeliveryOutcome => {
      frames.set(user, (frames.get(user) ?? 0) + 1)
      return 'sent'
    }
  } as unknown as ClientSession
}

async function invalidActions (metrics: GatewayMetrics): Promise<number> {
  const values = (await metrics.backendFrameErrors.get()).values
  return values.filter((v) => v.labels.reason === 'invalid_message').reduce((sum, v) => sum + v.value, 0)
}

function dispatcher (registry: SessionRegistry, forwarded: ClientAction[][]): { dispatch: ActionDispatch, metrics: GatewayMetrics } {
  const metrics = new GatewayMetrics()
  const dispatch = new ActionDispatch({
    endpoint: 'lobby',
    registry,
    cluster: { cluster: 'c', forward: (_endpoint, actions) => { forwarded.push(actions) } },
    metrics,
    log: pino({ level: 'silent' })
  })
  return { dispatch, metrics }
}

t.test('a send to all reaches 300,000 sessions, each once', async (t) => {
  const registry = new SessionRegistry('replace')
  const frames = new Map<string, number>()
  const USERS = 300_000
  for (let i = 0; i < USERS; i++) registry.register(session(`u${i}`, frames))
  const forwarded: ClientAction[][] = []
  const { dispatch, metrics } = dispatcher(registry, forwarded)
  dispatch.dispatch([{ action: 'send', all: true, data: { hello: 'everyone' } }])
  t.equal(frames.size, USERS, 'every session got the frame')
  t.ok([...frames.values()].every((n) => n === 1), 'each exactly once')
  t.equal(await invalidActions(metrics), 0, 'nothing was skipped as a bad action')
  t.equal(forwarded.length, 1, 'and the send went on to the rest of the cluster')
})

t.test('a send to one user, to users partly elsewhere, and a bad action among good ones', async (t) => {
  const registry = new SessionRegistry('replace')
  const frames = new Map<string, number>()
  for (const user of ['ada', 'bob']) registry.register(session(user, frames))
  const forwarded: ClientAction[][] = []
  const { dispatch, metrics } = dispatcher(registry, forwarded)
  let deep: unknown = 'bottom'
  for (let i = 0; i < 20_000; i++) deep = [deep]
  dispatch.dispatch([
    { action: 'send', user: 'ada', data: 1 },
    { action: 'send', user: 'zed', data: 2 },
    { action: 'send', users: ['bob', 'yan'], data: 3 },
    { action: 'send', user: 'bob', data: deep },
    { action: 'send', user: 'ada', data: 4 }
  ])
  t.same(Object.fromEntries(frames), { ada: 2, bob: 1 }, 'ada got her two sends, bob his one; the unencodable one went to nobody')
  t.equal(await invalidActions(metrics), 1, 'the unencodable send is counted')
  t.match(forwarded, [[{ action: 'send', users: ['zed'], data: 2 }, { action: 'send', users: ['yan'], data: 3 }]], 'users not here go on to the cluster, each send once')
  t.equal(forwarded[0].length, 2, 'and only those two')
})
