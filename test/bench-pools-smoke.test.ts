/**
 * The pool bench's smoke run (issue 12, figures): bench/pools.ts with tiny
 * sizes, so it cannot rot. It checks what the bench produced and that each
 * kill really was a failover (every player of the killed member re-opened
 * on a survivor, counted by the gateway, nobody disconnected), never how
 * fast anything was.
 */
import t from 'tap'
import { runBench } from './helpers/bench-run.js'
import { readdirSync, readFileSync } from 'node:fs'
import type { PoolBenchResult } from '../bench/pools.js'


t.setTimeout(240_000)

t.test('a smoke run measures the three figures, and each kill is a real failover', async (t) => {
  const dir = t.testdir()
  const { code, stdout, stderr } = await runBench('pools', { POOLS_SMOKE: '1', POOLS_OUT: dir })
  t.equal(code, 0, `the bench exits 0\n${stderr.slice(-3000)}`)
  const result = JSON.parse(readFileSync(`${dir}/pools-results.json`, 'utf8')) as PoolBenchResult
  t.ok(result.options.smoke, 'smoke options were used')
  t.same(result.problems, [], 'no problem seen: echoes intact, nobody closed, every streamed message echoed, counters agree')

  for (const side of ['single', 'pool'] as const) {
    const rt = result.roundTrip[side]
    t.equal(rt.runs.length, result.options.runs, `${side}: one figure per run`)
    t.ok(rt.runs.every((r) => r.count > 0 && r.rate > 0), `${side}: every run counted round trips`)
    t.ok(rt.p50Ms > 0 && rt.p99Ms >= rt.p50Ms, `${side}: 0 < p50 ≤ p99`)
    t.equal(rt.playersPerMember.reduce((s, n) => s + n, 0), result.options.clients, `${side}: every player reached a member`)
  }
  t.equal(result.roundTrip.single.playersPerMember.length, 1, 'the baseline has one backend')
  t.equal(result.roundTrip.pool.playersPerMember.length, 3, 'the pool has three members')
  t.ok(Number.isFinite(result.roundTrip.ratio.rate) && Number.isFinite(result.roundTrip.ratio.p99), 'the ratios pool ÷ single were computed')

  const { failoverMs } = result.options
  t.equal(result.failover.runs.length, result.options.kills, 'one figure per kill')
  for (const k of result.failover.runs) {
    t.ok(k.players > 0, `kill ${k.kill}: the killed member held players`)
    t.equal(k.rehomedMetric, k.players, `kill ${k.kill}: the gateway counted each of its players re-homed`)
    t.equal(k.failoversMetric, 1, `kill ${k.kill}: one failover counted`)
    // not a speed figure: the gateway must wait failoverMs before it moves anything
    // (less 5 ms: each process reads the wall clock from its own start-up reading)
    t.ok(k.firstOpenMs >= failoverMs - 5, `kill ${k.kill}: no player moved before failoverMs (${k.firstOpenMs.toFixed(0)} ms ≥ ${failoverMs})`)
    t.ok(k.lastOpenMs >= k.firstOpenMs, `kill ${k.kill}: last open after first`)
    t.ok((k.sent ?? 0) > 0 && k.missing === 0, `kill ${k.kill}: players streamed through the kill and every message came back`)
    t.same(k.closes, {}, `kill ${k.kill}: no player was disconnected`)
  }
  t.equal(result.failover.maxMs, Math.max(...result.failover.runs.map((k) => k.lastOpenMs)), 'the max is the slowest kill')

  const r = result.rehome
  t.ok(r.players >= result.options.rehomeClients, `the re-homing run put at least ${result.options.rehomeClients} players on the member it killed (${r.players})`)
  t.equal(r.rehomedMetric, r.players, 'gatehouse_pool_rehomed_clients_total counted every one of them')
  t.ok(r.rate > 0 && Number.isFinite(r.rate), 'a re-homing rate was computed')
  t.same(r.closes, {}, 'no player of the re-homing run was disconnected')

  const md = readFileSync(`${dir}/pools-results.md`, 'utf8')
  t.match(md, /\*\*pool ÷ single\*\*/, 'the report has the ratio row')
  t.match(md, /failoverMs` is \d+ ms/, 'the report states failoverMs')
  t.match(md, /The machine was shared/, 'the report records the shared machine')
  t.match(md, /\*\*re-homed players per second\*\*/, 'the report has the re-homing rate')
  t.equal(md.split('\n').filter((l) => /^\| \d+ \| \d+ \| [\d,]+ \/ [\d,]+ \|/.test(l)).length, result.options.kills, 'every kill is listed')
  t.match(stdout, /wrote .*pools-results\.md/, 'the output says where the report went')
})

t.test('a bad knob stops the bench before any process starts, naming the knob and what it wanted', async (t) => {
  for (const [knob, value, expected] of [
    ['POOLS_RUNS', '-1', /POOLS_RUNS must be an integer of at least 1, got "-1"/],
    ['POOLS_CLIENTS', '1', /POOLS_CLIENTS must be an integer of at least 2, got "1"/],
    ['POOLS_KILLS', 'ten', /POOLS_KILLS must be an integer of at least 1, got "ten"/]
  ] as const) {
    const dir = t.testdir()
    const { code, stderr } = await runBench('pools', { POOLS_SMOKE: '1', POOLS_OUT: dir, [knob]: value })
    t.not(code, 0, `${knob}=${value}: exits non-zero`)
    t.match(stderr, expected, `${knob}=${value}: says why`)
    t.same(readdirSync(dir), [], `${knob}=${value}: writes no results`)
  }
})
