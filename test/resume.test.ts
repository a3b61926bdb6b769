/** Reconnect grace (PROTOCOL.md §5b): a player whose network blips keeps their session, and the backend never notices. */
import t from 'tap'
import { gatewayWithBackends } from './helpers/setup.js'
import { connect, refusal } from './helpers/client.js'
import { tokenFor } from './helpers/tokens.js'

/** A game endpoint that holds a dropped player's session for 10 s unless `endpoint` says otherwise. */
async function resumableGame (t: { teardown (fn: () => unknown): void }, endpoint: Record<string, unknown> = {}, limits: Record<string, unknown> = {}) {
  const { gateway, backends } = await gatewayWithBackends(t, [
    { name: 'game', path: '/game/:matchId', resumeGraceMs: 10000, ...endpoint }
  ], { limits }, { sync: true })
  return { backend: backends.game, gateway }
}

t.test('a dropped player who comes back in time gets the kept frames first; the backend sees nothing', async (t) => {
  const { backend, gateway } = await resumableGame(t)
  const first = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  await backend.next('open', 'alice')
  first.ws.terminate() // no close frame: a network blip
  await gateway.logged(/holding its session/)
  backend.send({ action: 'send', user: 'alice', data: 'kept 1' })
  backend.send({ action: 'send', user: 'alice', data: 'kept 2' })
  const back = await connect(gateway.url('/game/m1'), { token: tokenFor('alice') })
  t.equal(await back.next(), 'kept 1', 'kept frames first, in order')
  t.equal(await back.next(), 'kept 2', 'then the second kept frame')
  back.ws.send('I am back')
  const event = await backend.events.next()
  t.same([event.event, event.user, event.data], ['message', 'alice', 'I am back'], 'the next thing the backend sees is her message: no close, no open')
  backend.send({ action: 'send', user: 'alice', data: 'live' })
  t.equal(await back.next(), 'live', 'live frames follow the kept ones')
  t.equal(await gateway.metric('gatehouse_resumes_total'), 1, 'the resume is counted')
  back.ws.close(1000)
  t.same(await backend.next('close', 'alice').then((e) => e.code), 1000, 'one close, when she really leaves')
  t.equal(backend.events.all.filter((e) => e.event === 'open').length, 1, 'the backend saw one open in all')
})

t.test('a grace that runs out reports the close (1006) and counts what was kept', async (t) => {
  const { backend, gateway } = await resumableGame(t, { resumeGraceMs: 100 })
  const client = await connect(gateway.url('/game/m1'), { token: tokenFor('bob') })
  await backend.next('open', 'bob')
  client.ws.terminate()
  await gateway.logged(/holding its session/)
  backend.send({ action: 'send', user: 'bob', data: 'never delivered' })
  const close = await backend.next('close', 'bob')
  t.same([close.code, close.reason], [1006, 'connection lost'], 'the backend hears 1006 once the grace ran out')
  t.equal(await gateway.metric('gatehouse_dropped_actions_total', { reason: 'resume_expired' }), 1, 'the kept frame is counted as undelivered')
  await connect(gateway.url('/game/m1'), { token: tokenFor('bob') })
  t.equal((await backend.next('open', 'bob')).user, 'bob', 'coming back later is a new session')
})

t.test('a normal close, or a close action, ends the session at once', async (t) => {
  const { backend, gateway } = await resumableGame(t)
  const carol = await connect(gateway.url('/game/m1'), { token: tokenFor('carol') })
  await backend.next('open', 'carol')
  carol.ws.close(1001)
  t.equal((await backend.next('close', 'carol')).code, 1001, 'the backend hears the client\'s own code at once')
  const dave = await connect(gateway.url('/game/m1'), { token: tokenFor('dave') })
  await backend.next('open', 'dave')
  dave.ws.terminate()
  await gateway.logged(/holding its session/)
  backend.send({ action: 'close', user: 'dave', code: 4000, reason: 'kicked while away' })
  t.same(await backend.next('close', 'dave').then((e) => [e.code, e.reason]), [4000, 'kicked while away'], 'the backend may end a held session')
})

t.test('a held session is resumed under reject too; a different match is a new session', async (t) => {
  const { backend, gateway } = await resumableGame(t, { duplicate: 'reject' })
  const first = await connect(gateway.url('/game/m1'), { token: tokenFor('erin') })
  await backend.next('open', 'erin')
  first.ws.terminate()
  await gateway.logged(/holding its session/)
  const again = await connect(gateway.url('/game/m1'), { token: tokenFor('erin') })
  t.equal((await refusal(gateway.url('/game/m1'), { token: tokenFor('erin') })).status, 409, 'once resumed, a second socket is a duplicate again')
  again.ws.terminate()
  await gateway.logged(/holding its session/)
  await connect(gateway.url('/game/m2'), { token: tokenFor('erin') })
  const close = await backend.next('close', 'erin')
  const open = await backend.next('open', 'erin')
  t.same([close.params, close.code], [{ matchId: 'm1' }, 1006], 'the held m1 session ends')
  t.same(open.params, { matchId: 'm2' }, 'and m2 opens')
})

t.test('a heartbeat timeout holds the session too', async (t) => {
  const { backend, gateway } = await resumableGame(t, {}, { heartbeatIntervalMs: 50 })
  const mute = await connect(gateway.url('/game/m1'), { token: tokenFor('frank'), ws: { autoPong: false } })
  await backend.next('open', 'frank')
  t.equal((await mute.closed).code, 1006, 'the gateway drops a client that does not answer pings')
  const held = await gateway.logged(/holding its session/)
  t.same([held.user, held.why], ['frank', 'heartbeat timeout'], 'and holds its session')
  backend.send({ action: 'send', user: 'frank', data: 'kept' })
  const back = await connect(gateway.url('/game/m1'), { token: tokenFor('frank') })
  t.equal(await back.next(), 'kept', 'the frame kept while he was away comes first')
  back.ws.send('back')
  const event = await backend.events.next()
  t.same([event.event, event.user, event.data], ['message', 'frank', 'back'], 'the backend saw no close and no open')
})

t.test('a heartbeat timeout whose grace runs out is reported with its reason', async (t) => {
  const { backend, gateway } = await resumableGame(t, { resumeGraceMs: 150 }, { heartbeatIntervalMs: 50 })
  const mute = await connect(gateway.url('/game/m1'), { token: tokenFor('frank'), ws: { autoPong: false } })
  await backend.next('open', 'frank')
  const close = await backend.next('close', 'frank')
  t.same([close.code, close.reason], [1006, 'heartbeat timeout'], 'the backend hears 1006 and that it was the heartbeat')
  t.ok(gateway.logs.some((l) => l.includes('holding its session') && l.includes('"user":"frank"')), 'reported only after the session was held')
  t.equal((await mute.closed).code, 1006, 'the mute client sees 1006')
})

t.test('a bad token cannot take over a held session', async (t) => {
  const { backend, gateway } = await resumableGame(t)
  const first = await connect(gateway.url('/game/m1'), { token: tokenFor('hank') })
  await backend.next('open', 'hank')
  first.ws.terminate()
  await gateway.logged(/holding its session/)
  const forged = tokenFor('hank', { iss: 'https://evil.test' })
  t.equal((await refusal(gateway.url('/game/m1'), { token: forged })).status, 401, 'a token from another issuer is refused')
  t.equal((await refusal(gateway.url('/game/m1'), { token: 'not.a.jwt' })).status, 401, 'garbage is refused')
  backend.send({ action: 'send', user: 'hank', data: 'kept for hank' })
  const back = await connect(gateway.url('/game/m1'), { token: tokenFor('hank') })
  t.equal(await back.next(), 'kept for hank', 'the session is still his to resume')
  t.equal(await gateway.metric('gatehouse_resumes_total'), 1, 'the one real resume is counted')
  t.notOk(backend.events.all.some((e) => e.event === 'close'), 'the backend never heard of the attempts')
})
