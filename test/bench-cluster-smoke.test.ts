/**
 * The cluster bench's smoke run (`CLUSTER_SMOKE=1 node dist/bench/cluster.js`):
 * a tiny run that must still produce issue 15 item 5's figures (the bare ws
 * loop baseline, server CPU per client reached, Redis bytes and PUBLISHes per
 * broadcast). It asserts what the bench produced, never how fast anything was.
 */
import t from 'tap'
import { runBench } from './helpers/bench-run.js'
import { readdirSync, readFileSync } from 'node:fs'


t.setTimeout(300_000)

interface Broadcast { expected: number, received: number, cpuMs: number, redis?: { inBytes: number, outBytes: number, publishes: number } }
interface Phase { opened: number, broadcasts: Broadcast[], cpuPerClientUs: number, redisIdle?: { inBytes: number, outBytes: number } }
interface Result {
  options: { singleClients: number, broadcasts: number }
  single: Phase
  cluster: Phase
  direct?: { opened: number, broadcasts: Array<{ expected: number, received: number, cpuMs: number }>, cpuPerClientUs: number }
  problems: string[]
}

t.test('a smoke run measures the bare ws loop, CPU per client and Redis traffic per broadcast', async (t) => {
  const dir = t.testdir()
  const { code, stdout, stderr } = await runBench('cluster', { CLUSTER_SMOKE: '1', CLUSTER_OUT: dir })
  t.equal(code, 0, `the cluster bench exits 0\n${stderr.slice(-2000)}`)
  const result = JSON.parse(readFileSync(`${dir}/cluster-results.json`, 'utf8')) as Result
  t.same(result.problems, [], 'no problem seen')

  const direct = result.direct
  t.ok(direct, 'the bare ws loop was measured')
  t.equal(direct?.opened, result.options.singleClients, 'the bare ws loop held as many clients as the single node')
  t.equal(direct?.broadcasts.length, result.options.broadcasts, 'one figure per broadcast of the bare loop')
  t.ok(direct?.broadcasts.every((b) => b.received === b.expected && b.cpuMs >= 0), 'every broadcast of the bare loop reached every client, its CPU read')
  t.ok(Number.isFinite(direct?.cpuPerClientUs), 'the bare loop has a CPU per client')

  for (const phase of [result.single, result.cluster]) {
    t.ok(phase.broadcasts.every((b) => Number.isFinite(b.cpuMs) && b.cpuMs >= 0), 'server CPU read for every gateway broadcast')
    t.ok(Number.isFinite(phase.cpuPerClientUs), 'a gateway phase has a CPU per client')
  }
  t.ok(result.single.broadcasts.every((b) => b.redis === undefined), 'the single node, without Redis, has no Redis traffic')
  t.ok(result.cluster.broadcasts.every((b) => (b.redis?.publishes ?? 0) >= 1 && (b.redis?.inBytes ?? 0) > 0 && (b.redis?.outBytes ?? 0) > 0), 'every cluster broadcast went through Redis: a PUBLISH, bytes in and out')
  t.ok(result.cluster.redisIdle !== undefined, 'the INFO readings\' own Redis traffic is measured')

  t.match(stdout, /\*\*Against the bare ws loop\*\*/, 'the report compares with the bare ws loop')
  t.match(stdout, /\| PUBLISH commands per broadcast, median \| – \| \d+ \|/, 'the report has PUBLISHes per broadcast')
  t.match(stdout, /\| Redis bytes per broadcast/, 'the report has Redis bytes per broadcast')
})

t.test('a bad knob stops the cluster bench, naming it', async (t) => {
  const dir = t.testdir()
  const { code, stderr } = await runBench('cluster', { CLUSTER_SMOKE: '1', CLUSTER_OUT: dir, CLUSTER_NODES: 'two' })
  t.not(code, 0, 'exits non-zero')
  t.match(stderr, /CLUSTER_NODES must be a positive integer, not "two"/, 'says which knob and what it wanted')
  t.same(readdirSync(dir), [], 'writes no results')
})
