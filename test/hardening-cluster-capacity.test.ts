/**
 * Issue 10, item 18: in a cluster the claim awaits Redis, and handshakes
 * arriving meanwhile must not all see the same free places.
 */
import t from 'tap'
import { Redis } from 'ioredis'
import { backendFor } from './helpers/backend.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { connect, type TestClient } from './helpers/client.js'
import { redisFor } from './helpers/redis.js'
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
  t.equal(refused.length, 45)
  t.same([...new Set(refused)], ['handshake refused with HTTP 503'], 'every other one gets 503')
  t.equal(await gateway.metric('gatehouse_handshake_failures_total', { reason: 'capacity' }), 45)

  // places come back once clients leave: in-flight handshakes were uncounted when they upgraded
  opened[0].ws.close()
  await opened[0].closed
  await backend.next('close')
  const another = await connect(gateway.url('/lobby'), { token: tokenFor('late') })
  t.equal(another.ws.readyState, another.ws.OPEN, 'a place freed is taken again')
  another.ws.terminate()
})
