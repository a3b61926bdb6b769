/**
 * A refresh that lands on another node of a cluster (PROTOCOL.md §5d): the
 * hand-off closes the old connection with 4410 (`close` event, code 4410,
 * on the old node's link), then the new node sends `open` marked
 * `refresh: true`; the SDK turns the pair into one `onRefresh`. Two real
 * `gatehouse` processes and a real redis-server.
 */
import t from 'tap'
import { GatehouseBackend } from '../src/sdk/index.js'
import { CloseCodes } from '../protocol/index.js'
import { BACKEND_TOKEN, call, captureLogger, recorder } from './sdk-fixtures.js'
import { connect, refusal } from './helpers/client.js'
import { clusterBackendFor, startNode } from './helpers/cluster.js'
import { redisFor } from './helpers/redis.js'
import { signWith, tokenFor } from './helpers/tokens.js'

t.test('across nodes the backend sees close 4410 on the old node, then open marked refresh on the new one', async (t) => {
  const redis = await redisFor(t)
  const backend = await clusterBackendFor(t)
  const spec = [{ name: 'game', path: '/game/:matchId', backend: backend.url }]
  const [a, b] = await Promise.all(['ref-a', 'ref-b'].map(async (id) => await startNode(t, id, redis.url, spec)))

  const first = await connect(a.url('/game/m1'), { token: tokenFor('ann', { n: 1 }) })
  await backend.events.next((e) => e.event === 'open' && e.user === 'ann', 10000, 'ann open')
  first.ws.send('from node A')
  const second = await connect(b.url('/game/m1?refresh=1'), { token: tokenFor('ann', { n: 2 }) })
  t.same(await first.closed, { code: 4410, reason: CloseCodes.REFRESHED.reason }, 'the old socket on node A gets 4410')
  const message = await backend.events.next((e) => e.user === 'ann', 10000, 'ann message')
  const close = await backend.events.next((e) => e.user === 'ann', 10000, 'ann close')
  const open = await backend.events.next((e) => e.user === 'ann', 10000, 'ann open again')
  t.same([message.event, message.via, message.data], ['message', 'ref-a', 'from node A'], 'the message on the old socket first')
  t.same([close.event, close.via, close.code, close.reason], ['close', 'ref-a', 4410, CloseCodes.REFRESHED.reason], 'then close 4410 from node A')
  t.same([open.event, open.via, open.refresh, (open.claims as Record<string, unknown>).n], ['open', 'ref-b', true, 2], 'then open marked refresh, with the new claims, from node B')
  t.equal(await b.metric('gatehouse_refreshes_total', { from: 'cluster' }), 1, 'node B counts a refresh across nodes')
  backend.sendVia('ref-a', 'game', { action: 'send', user: 'ann', data: 'via node A' })
  t.equal(await second.next(), 'via node A', 'presence points at node B')

  // bad input: a refresh with a bad token on node A is refused before any hand-off
  const forged = await refusal(a.url('/game/m1?refresh=1'), { token: signWith('not-the-secret-at-all-not-at-all', 'HS256', { sub: 'ann' }) })
  t.equal(forged.status, 401, 'a refresh with a bad token gets 401')
  second.ws.send('still on node B')
  t.equal((await backend.events.next((e) => e.user === 'ann', 10000, 'ann message on B')).via, 'ref-b', 'ann is untouched on node B')

  // bad input: other params across nodes is a replace, and its open is not marked
  const other = await connect(a.url('/game/m2?refresh=1'), { token: tokenFor('ann', { n: 3 }) })
  t.equal((await second.closed).code, 4409, 'a refresh with other params across nodes is a replace (4409)')
  const close2 = await backend.events.next((e) => e.user === 'ann' && e.event === 'close', 10000, 'ann close (replace)')
  const open2 = await backend.events.next((e) => e.user === 'ann' && e.event === 'open', 10000, 'ann open (replace)')
  t.same([close2.via, close2.code, open2.via, open2.refresh], ['ref-b', 4409, 'ref-a', undefined], 'close 4409 on node B, then a plain open on node A')
  // a second tab without the marker is a replace too
  await connect(b.url('/game/m2'), { token: tokenFor('ann', { n: 4 }) })
  t.equal((await other.closed).code, 4409, 'no ?refresh=1: a replace')
})

t.test('the SDK presents a refresh across nodes as one onRefresh, with no onClose or onOpen', async (t) => {
  const redis = await redisFor(t)
  const { handlers, calls } = recorder()
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger(), linkGraceMs: 60000 }, handlers)
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  const spec = [{ name: 'game', path: '/game/:matchId', backend: { url, token: BACKEND_TOKEN, acks: true, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }]
  const [a, b] = await Promise.all(['sdk-ref-a', 'sdk-ref-b'].map(async (id) => await startNode(t, id, redis.url, spec)))

  const first = await connect(a.url('/game/m1'), { token: tokenFor('bea', { n: 1 }) })
  await call(calls, 'open bea')
  const second = await connect(b.url('/game/m1?refresh=1'), { token: tokenFor('bea', { n: 2 }) })
  t.equal((await first.closed).code, 4410, 'the old socket on node A gets 4410')
  t.match(await call(calls, 'refresh bea'), /"n":2/, 'onRefresh with the new claims')
  t.notOk(calls.all.some((c) => c.startsWith('close bea')), 'no onClose')
  t.equal(calls.all.filter((c) => c.startsWith('open bea')).length, 1, 'one onOpen in all')
  t.equal(backend.send('bea', 'hello again'), 1, 'sends find bea')
  t.equal(await second.next(), 'hello again', 'through node B')
  second.ws.send('from node B')
  t.equal(await call(calls, 'message bea'), 'message bea "from node B"', 'her messages through node B are hers')
  second.ws.close(1000)
  t.equal(await call(calls, 'close bea'), 'close bea 1000 ', 'one onClose when she leaves')
})
