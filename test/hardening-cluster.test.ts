/**
 * Issue 10, the cluster's share: one live connection per (endpoint, user)
 * across nodes under a burst of handshakes, and after a handshake that left
 * during its claim (item 4); `--workers` that cannot start (item 11);
 * `gatehouse_broker_up` on a node alone (item 14). Nodes are real
 * `gatehouse` processes on a real redis-server.
 */
import { createServer } from 'node:net'
import { once } from 'node:events'
import t from 'tap'
import { Redis } from 'ioredis'
import { WebSocket } from 'ws'
import { backendFor } from './helpers/backend.js'
import { connect, type TestClient } from './helpers/client.js'
import { clusterBackendFor, eventually, startNode, TEST_CLUSTER, type ClusterBackend, type GatewayNode } from './helpers/cluster.js'
import { runCli } from './helpers/cli.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { redisFor } from './helpers/redis.js'
import { tokenFor } from './helpers/tokens.js'

const BURST = 12
const ROUNDS = 8

interface Attempt {
  node: GatewayNode
  client?: TestClient
  /** The refusal, for a handshake that got no WebSocket. */
  refused?: string
}

/** One handshake: the client, or the refusal (its message names the HTTP status). */
async function attempt (node: GatewayNode, path: string, user: string): Promise<Attempt> {
  try {
    return { node, client: await connect(node.url(path), { token: tokenFor(user) }) }
  } catch (err) {
    return { node, refused: (err as Error).message }
  }
}

const isOpen = (a: Attempt): boolean => a.client !== undefined && a.client.ws.readyState === a.client.ws.OPEN

/** The backend's events for one user of one endpoint, as "open@node" / "close@node". */
function history (backend: ClusterBackend, endpoint: string, user: string): string[] {
  return backend.events.all
    .filter((e) => e.endpoint === endpoint && e.user === user && (e.event === 'open' || e.event === 'close'))
    .map((e) => `${e.event}@${e.via}`)
}

for (const { policy, path, endpoint } of [
  { policy: 'replace', path: '/lobby', endpoint: 'lobby' },
  { policy: 'reject', path: '/duel', endpoint: 'duel' }
]) {
  t.test(`${policy}: ${BURST} concurrent handshakes of one user over 2 nodes leave exactly one live connection, the one Redis names`, async (t) => {
    const redis = await redisFor(t)
    const backend = await clusterBackendFor(t)
    // with acks a close committed on one link has reached the backend before another link's open (PROTOCOL.md §5c)
    const link = { url: backend.url, acks: true, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 }
    const spec = [
      { name: 'lobby', path: '/lobby', backend: link },
      { name: 'duel', path: '/duel', backend: link, duplicate: 'reject' }
    ]
    const nodes = await Promise.all(['burst-a', 'burst-b'].map(async (id) => await startNode(t, id, redis.url, spec)))
    await Promise.all([0, 1, 2, 3].map(async () => await backend.hellos.next()))
    const store = new Redis(redis.url)
    t.teardown(() => store.disconnect())
    const user = `${policy}-user`
    const attempts: Attempt[] = []
    for (let round = 1; round <= ROUNDS; round++) {
      const heard = history(backend, endpoint, user).length
      const burst = await Promise.all([...Array(BURST).keys()].map(async (i) => await attempt(nodes[i % 2], path, user)))
      attempts.push(...burst)
      const refusals = burst.flatMap((a) => a.refused === undefined ? [] : [a.refused])
      t.ok(refusals.every((r) => /HTTP 409$/.test(r)), `round ${round}: every refused handshake got 409 (${refusals.length} refused)`)
      // every handshake has its answer: from here on sockets only close, and the backend only hears of
      // closes (and of opens already under way); settled once each node's sockets match what its link reported
      const settled = await eventually(async () => {
        const events = history(backend, endpoint, user)
        const count = (what: string): number => events.filter((e) => e === what).length
        const perNode = nodes.map((n) => ({ node: n.id, sockets: attempts.filter((a) => a.node === n && isOpen(a)).length, live: count(`open@${n.id}`) - count(`close@${n.id}`) }))
        return { perNode, events }
      }, (s) => s.perNode.every((n) => n.sockets === n.live) && s.perNode.reduce((sum, n) => sum + n.sockets, 0) <= 1,
      10000, `round ${round}: at most one socket left open, and each node's link told the backend of its opens and closes`).catch((err: Error) => err)
      if (settled instanceof Error) {
        t.fail(settled.message)
        return
      }
      const survivors = attempts.filter(isOpen)
      t.equal(survivors.length, 1, `round ${round}: exactly one socket of ${user} is open`)
      const survivor = survivors[0]
      const presence = JSON.parse(await store.get(`${TEST_CLUSTER.name}:p:${endpoint}:${user}`) ?? 'null') as { n: string, c: string } | null
      t.equal(presence?.n, survivor.node.id, `round ${round}: Redis presence names the survivor's node`)
      const held = JSON.parse(await store.hget(`${TEST_CLUSTER.name}:held:${survivor.node.id}`, `${endpoint}:${user}`) ?? 'null') as { c: string } | null
      t.equal(held?.c, presence?.c, `round ${round}: and the connection that node holds`)
      for (const node of nodes) {
        t.equal(await node.metric('gatehouse_connections', { endpoint }), node === survivor.node ? 1 : 0, `round ${round}: ${node.id} holds ${node === survivor.node ? 'it' : 'none'}`)
      }
      // this round's events, and the last one before it
      const events = history(backend, endpoint, user).slice(Math.max(0, heard - 1))
      const twice = events.findIndex((e, i) => i > 0 && e.startsWith('open@') && events[i - 1].startsWith('open@'))
      t.equal(twice, -1, `round ${round}: the backend never saw two opens without a close between them: ${events.join(' ')}`)
      if (policy === 'reject') {
        // under reject the holder keeps the user: free it for the next round
        survivor.client?.ws.close(1000)
        await backend.events.next((e) => e.endpoint === endpoint && e.user === user && e.event === 'close' && e.code === 1000, 10000, `round ${round}: the survivor's close`)
      }
    }
  })
}

t.test('replace: a handshake given up while its claim runs leaves the user with the connection its node still holds', async (t) => {
  const redis = await redisFor(t)
  const backend = await clusterBackendFor(t)
  const spec = [{ name: 'lobby', path: '/lobby', backend: backend.url }]
  // a long lease: no renewal is due (and queued ahead of the claim) while Redis is paused
  const [a, b] = await Promise.all(['quit-a', 'quit-b'].map(async (id) => await startNode(t, id, redis.url, spec, { presenceTtlMs: 60000 })))
  await Promise.all([0, 1].map(async () => await backend.hellos.next()))
  const store = new Redis(redis.url)
  t.teardown(() => store.disconnect())
  const presence = async (): Promise<{ n: string, c: string } | null> => JSON.parse(await store.get(`${TEST_CLUSTER.name}:p:lobby:vic`) ?? 'null')
  const holder = await connect(a.url('/lobby'), { token: tokenFor('vic') })
  await backend.events.next((e) => e.event === 'open' && e.user === 'vic')
  const before = await presence()
  t.equal(before?.n, 'quit-a', 'node A holds vic')

  // a second handshake of vic on node A; its claim is held up in Redis, and meanwhile the client leaves
  await store.call('CLIENT', 'PAUSE', '10000', 'WRITE')
  const quitter = new WebSocket(a.url('/lobby'), { headers: { authorization: `Bearer ${tokenFor('vic')}` } })
  quitter.on('error', () => {})
  await eventually(async () => String(await store.call('CLIENT', 'LIST')), (list) => list.split('\n').some((l) => l.includes('name=gatehouse:quit-a') && / flags=b /.test(l) && / cmd=evalsha /.test(l)),
    10000, "node A's claim to be held by the pause")
  const gone = new Promise((resolve) => quitter.once('close', resolve))
  quitter.terminate()
  await gone
  await store.call('CLIENT', 'UNPAUSE')
  const after = await eventually(presence, (p) => p?.c === before?.c, 5000, 'presence to name the holder again').catch(presence)
  t.same(after, before, "Redis names the holder again, not the handshake that left (nor no one)")
  t.equal(holder.ws.readyState, holder.ws.OPEN, 'the holder is still connected')

  // so the cluster still finds it: a handshake on node B replaces it
  const moved = await connect(b.url('/lobby'), { token: tokenFor('vic') })
  const closed = await Promise.race([holder.closed, new Promise((resolve) => setTimeout(() => resolve('still open'), 10000))])
  t.same(closed, { code: 4409, reason: 'replaced by a newer connection' }, 'the holder on node A is replaced from node B')
  await backend.events.next((e) => e.event === 'open' && e.user === 'vic' && e.via === 'quit-b')
  t.same(history(backend, 'lobby', 'vic'), ['open@quit-a', 'close@quit-a', 'open@quit-b'], 'the backend never heard of the handshake that left')
  moved.ws.close(1000)
})

t.test('--workers 2 on a port already taken: the primary gives up and exits non-zero, saying why', async (t) => {
  const redis = await redisFor(t)
  const backend = await clusterBackendFor(t)
  const taken = createServer()
  taken.listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const port = (taken.address() as { port: number }).port
  const run = runCli(testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }], {
    server: { host: '127.0.0.1', port, nodeId: 'taken', shutdownTimeoutMs: 3000 },
    cluster: { ...TEST_CLUSTER, redis: redis.url },
    log: { level: 'info' }
  }), {}, ['--workers', '2'])
  t.teardown(() => { if (run.child.exitCode === null) run.child.kill('SIGKILL') })
  const code = await run.exited
  t.equal(code, 1, 'the primary exits 1')
  t.ok(run.lines.all.some((l) => l.role === 'primary' && /giving up/.test(String(l.msg))), 'the primary logs that it gave up on its workers')
  t.match(run.stderr(), /EADDRINUSE/, 'and the workers said why they could not start')
})

t.test('gatehouse_broker_up is 1 on a node alone', async (t) => {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }]))
  await backend.next('hello')
  t.equal(await gateway.metric('gatehouse_broker_up'), 1, 'as its help text says')
  t.match((await gateway.get('/metrics')).body, /# HELP gatehouse_broker_up .*always 1 for a node alone/, 'the help text says it is always 1 for a node alone')
})
