/**
 * Issue 10, item 18: in a cluster the claim awaits Redis, and handshakes
 * arriving meanwhile must not all see the same free places.
 */
import { connect as tcpConnect } from 'node:net'
import t from 'tap'
import { Redis } from 'ioredis'
import { backendFor } from './helpers/backend.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { connect, refusal, type TestClient } from './helpers/client.js'
import { redisFor } from './helpers/redis.js'
import { eventually } from './helpers/cluster.js'
import { tokenFor } from './helpers/tokens.js'

t.test('50 concurrent handshakes against maxConnections 5 with Redis: exactly 5 admitted, the rest 503', async (t) => {
  const redis = await redisFor(t)
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }], {
    cluster: { redis: redis.url },
    limits: { maxConnections: 5 }
  }))
  await backend.next('hello')

  // holding Redis makes every claim wait, as a slow round trip would: the whole burst arrives while the first claims are pending
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  await admin.call('CLIENT', 'PAUSE', '1500', 'ALL')

  const attempts = await Promise.allSettled(Array.from({ length: 50 }, async (_, i) => await connect(gateway.url('/lobby'), { token: tokenFor(`p${i}`) })))
  const opened = attempts.filter((a): a is PromiseFulfilledResult<TestClient> => a.status === 'fulfilled').map((a) => a.value)
  t.teardown(() => { for (const client of opened) client.ws.terminate() })
  const refused = attempts.filter((a): a is PromiseRejectedResult => a.status === 'rejected').map((a) => String(a.reason.message))

  t.equal(opened.length, 5, 'exactly maxConnections handshakes are admitted')
  t.equal(refused.length, 45, 'the other 45 handshakes are refused')
  t.same([...new Set(refused)], ['handshake refused with HTTP 503'], 'every other one gets 503')
  t.equal(await gateway.metric('gatehouse_handshake_failures_total', { reason: 'capacity' }), 45, 'the 45 refusals are counted as capacity failures')

  // places come back once clients leave: in-flight handshakes were uncounted when they upgraded
  opened[0].ws.close()
  await opened[0].closed
  await backend.next('close')
  const another = await connect(gateway.url('/lobby'), { token: tokenFor('late') })
  t.equal(another.ws.readyState, another.ws.OPEN, 'a place freed is taken again')
  another.ws.terminate()
})

t.test('a client that leaves while its claim awaits Redis gives back its place and its claim', async (t) => {
  const redis = await redisFor(t)
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url, duplicate: 'reject' }], {
    cluster: { redis: redis.url },
    limits: { maxConnections: 1 }
  }))
  await backend.next('hello')
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  await admin.call('CLIENT', 'PAUSE', '1500', 'ALL')

  const ghost = tcpConnect(gateway.port, '127.0.0.1')
  ghost.on('error', () => {})
  ghost.write(`GET /lobby HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer ${tokenFor('ghost')}\r\n\r\n`)
  const busy = await refusal(gateway.url('/lobby'), { token: tokenFor('other') })
  t.equal(busy.status, 503, 'the handshake awaiting its claim holds the only place')
  ghost.destroy()

  // after the pause Redis serves its clients in no set order: wait for the ghost's claim to complete, then for its release
  await eventually(async () => await gateway.metric('gatehouse_cluster_claims_total'), (n) => n === 1, 10_000, "the ghost's claim to complete")
  const left = await eventually(async () => await admin.keys('*ghost*'), (keys) => keys.length === 0, 10_000, "the ghost's claim to leave Redis")
  t.same(left, [], "the ghost's claim was released in Redis")
  const back = await connect(gateway.url('/lobby'), { token: tokenFor('ghost') })
  t.equal(back.ws.readyState, back.ws.OPEN, 'the same user gets in: neither the place nor the claim in Redis was kept')
  t.equal((await backend.next('open', 'ghost')).user, 'ghost', "the backend is told of ghost's new open")
  back.ws.terminate()
})
