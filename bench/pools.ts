/**
 * `npm run bench:pools`: issue 12's figures for backend pools (docs/pools.md).
 *
 * 1. Routing overhead: the same gateway config with `backend.urls` of 3
 *    members versus `backend.url` of one, route `params.matchId`, 2 players
 *    per match, round trips with one message in flight per client; runs
 *    interleaved, medians, pool ÷ single.
 * 2. Failover time: per kill, a fresh gateway and 3 members, players
 *    streaming with acks; the member holding the most players is SIGKILLed;
 *    the time from the kill until the survivors have each of its players'
 *    `open` (seen from the backends' side), with `failoverMs` as the part
 *    the gateway waits on purpose.
 * 3. Re-homed clients per second: a weighted pool whose heavy member holds
 *    thousands of idle players is SIGKILLed; the rate from the first to the
 *    last `open` on the heirs, and gatehouse_pool_rehomed_clients_total.
 *
 * Writes bench/pools-results.md and .json (or into POOLS_OUT). Knobs: KNOBS.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join, relative } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { machineConditions } from './conditions.js'
import { gatewayConfig } from './contenders.js'
import { forkChild, type Child } from './ipc.js'
import { Histogram, median, type SerializedHistogram } from './stats.js'

const KNOBS = `POOLS_RUNS (5 interleaved round-trip runs per side), POOLS_CLIENTS (100), POOLS_DURATION_MS (3000), POOLS_WARMUP_MS (1000),
POOLS_KILLS (10), POOLS_KILL_CLIENTS (120 streaming players, 2 per match), POOLS_STREAM_INTERVAL_MS (100 between a player's messages),
POOLS_REHOME_CLIENTS (5000 players on the killed member), POOLS_FAILOVER_MS (1000), POOLS_OUT (bench/), POOLS_SMOKE=1 (tiny run into a temp dir)`

const SOURCE_DIR = fileURLToPath(new URL('../../bench/', import.meta.url))
const REPO = fileURLToPath(new URL('../../', import.meta.url))
const GATEWAY = fileURLToPath(new URL('./servers/gateway-server.js', import.meta.url))
const MEMBER = fileURLToPath(new URL('./servers/pool-member.js', import.meta.url))
const CLIENTS = fileURLToPath(new URL('./load/pool-clients.js', import.meta.url))

export interface PoolBenchOptions {
  runs: number
  clients: number
  durationMs: number
  warmupMs: number
  kills: number
  killClients: number
  streamIntervalMs: number
  rehomeClients: number
  failoverMs: number
  out: string
  smoke: boolean
}

function intKnob (env: NodeJS.ProcessEnv, name: string, fallback: number, min = 1): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer of at least ${min}, got "${raw}"`)
  return value
}

function optionsFromEnv (env: NodeJS.ProcessEnv = process.env): PoolBenchOptions {
  const smoke = env.POOLS_SMOKE === '1'
  return {
    runs: intKnob(env, 'POOLS_RUNS', smoke ? 2 : 5),
    clients: intKnob(env, 'POOLS_CLIENTS', smoke ? 10 : 100, 2),
    durationMs: intKnob(env, 'POOLS_DURATION_MS', smoke ? 500 : 3000),
    warmupMs: intKnob(env, 'POOLS_WARMUP_MS', smoke ? 200 : 1000, 0),
    kills: intKnob(env, 'POOLS_KILLS', smoke ? 2 : 10),
    killClients: intKnob(env, 'POOLS_KILL_CLIENTS', smoke ? 12 : 120, 2),
    streamIntervalMs: intKnob(env, 'POOLS_STREAM_INTERVAL_MS', 100),
    rehomeClients: intKnob(env, 'POOLS_REHOME_CLIENTS', smoke ? 40 : 5000),
    failoverMs: intKnob(env, 'POOLS_FAILOVER_MS', smoke ? 300 : 1000, 0),
    out: env.POOLS_OUT ?? (smoke ? mkdtempSync(join(os.tmpdir(), 'gatehouse-pools-smoke-')) : SOURCE_DIR),
    smoke
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const say = (line: string): void => { process.stderr.write(`bench:pools: ${line}\n`) }
const wallNow = (): number => performance.timeOrigin + performance.now()
const problems: string[] = []

// ---------------------------------------------------------------- a rig: members + a gateway

interface Member { id: string, child: Child, url: string, weight: number }
interface Rig { name: string, gateway: Child, port: number, members: Member[], base: string }

/** Every bench child still running, stopped on the way out whatever happens. */
const children = new Set<Child>()

async function fork<T> (name: string, path: string, args: string[] = []): Promise<{ child: Child, ready: T }> {
  const started = await forkChild<T>(name, path, { args })
  children.add(started.child)
  started.child.process.once('exit', () => children.delete(started.child))
  return started
}

interface MemberStats { links: number, opens: number, closes: number, messages: number, users: number, badFrames: number, handlerErrors: number }

/** `weights.length` members (one: a plain `backend.url`), then a gateway dialling them, ready once every member has a link. */
async function startRig (name: string, weights: number[], failoverMs: number): Promise<Rig> {
  const members = await Promise.all(weights.map(async (weight, i) => {
    const { child, ready } = await fork<{ port: number }>(`${name} member m${i + 1}`, MEMBER)
    return { id: `m${i + 1}`, child, url: `ws://127.0.0.1:${ready.port}`, weight }
  }))
  const base = gatewayConfig(members[0].url) as Record<string, unknown>
  const backend = {
    ...(members.length === 1 ? { url: members[0].url } : { urls: members.map((m) => ({ id: m.id, url: m.url, weight: m.weight })) }),
    route: 'params.matchId',
    acks: true,
    failoverMs,
    lingerMs: 30000
  }
  const config = { ...base, endpoints: [{ name: 'game', path: '/game/:matchId', backend }], queue: { graceMs: 60000 } }
  const { child: gateway, ready } = await fork<{ port: number }>(`${name} gateway`, GATEWAY, [JSON.stringify(config)])
  await gateway.call('ready')
  const deadline = Date.now() + 20000
  while (true) {
    const stats = await Promise.all(members.map((m) => m.child.call<MemberStats>('stats')))
    if (stats.every((s) => s.links > 0)) break
    if (Date.now() > deadline) throw new Error(`${name}: not every member got its gateway link within 20 s`)
    await sleep(20)
  }
  return { name, gateway, port: ready.port, members, base: `ws://127.0.0.1:${ready.port}/game` }
}

async function stopRig (rig: Rig): Promise<void> {
  await rig.gateway.stop()
  await Promise.all(rig.members.map((m) => m.child.stop()))
}

/** A counter or gauge of the gateway's /metrics, summed over its labels. */
async function metric (rig: Rig, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${rig.port}/metrics`, { signal: AbortSignal.timeout(10000) })).text()
  let sum = 0
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (match?.[1] === name) sum += Number(match[3])
  }
  return sum
}

interface Connected { opened: number, failed: number, errors: string[], elapsedMs: number }

/** Players `from`..`from + count - 1` of `group`: player i is `${group}-u${i}` in match `${group}-m${i >> 1}`. */
async function connect (clients: Child, rig: Rig, group: string, from: number, count: number): Promise<void> {
  const users = Array.from({ length: count }, (_, k) => `${group}-u${from + k}`)
  const matches = Array.from({ length: count }, (_, k) => `${group}-m${(from + k) >> 1}`)
  const got = await clients.call<Connected>('connect', { name: group, base: rig.base, users, matches, concurrency: 64 })
  if (got.failed > 0) throw new Error(`${group}: ${got.failed} of ${count} players could not connect: ${got.errors.join('; ')}`)
}

/** Waits until the members together hold `players` users (every `open` reached a backend). */
async function opensReached (rig: Rig, members: Member[], players: number, timeoutMs = 60000): Promise<MemberStats[]> {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const stats = await Promise.all(members.map((m) => m.child.call<MemberStats>('stats')))
    if (stats.reduce((s, x) => s + x.users, 0) >= players) return stats
    if (Date.now() > deadline) throw new Error(`${rig.name}: the members hold ${stats.reduce((s, x) => s + x.users, 0)} of ${players} players after ${timeoutMs} ms`)
    await sleep(20)
  }
}

// ---------------------------------------------------------------- 1. routing overhead

export interface RoundTripRun { run: number, rate: number, p50Ms: number, p99Ms: number, count: number }
export interface RoundTripSide { runs: RoundTripRun[], rate: number, p50Ms: number, p99Ms: number, playersPerMember: number[] }

async function roundTrips (options: PoolBenchOptions, clients: Child): Promise<{ single: RoundTripSide, pool: RoundTripSide }> {
  say(`routing overhead: ${options.clients} players (${options.clients >> 1} matches) on one backend and on a pool of 3, ${options.runs} interleaved runs of ${options.durationMs} ms`)
  const rigs = { single: await startRig('single', [1], options.failoverMs), pool: await startRig('pool', [1, 1, 1], options.failoverMs) }
  try {
    const sides = { single: [] as RoundTripRun[], pool: [] as RoundTripRun[] }
    const spread = { single: [] as number[], pool: [] as number[] }
    for (const side of ['single', 'pool'] as const) {
      await connect(clients, rigs[side], side, 0, options.clients)
      spread[side] = (await opensReached(rigs[side], rigs[side].members, options.clients)).map((s) => s.users)
    }
    for (let run = 1; run <= options.runs; run++) {
      // alternate which side goes first, so a trend in the machine's load weighs on both alike
      for (const side of run % 2 === 1 ? ['single', 'pool'] as const : ['pool', 'single'] as const) {
        const r = await clients.call<{ count: number, elapsedMs: number, histogram: SerializedHistogram, failures: number, mismatches: number }>('roundTrips', { name: side, warmupMs: options.warmupMs, durationMs: options.durationMs })
        const h = new Histogram()
        h.merge(r.histogram)
        const figure = { run, rate: r.count / (r.elapsedMs / 1000), p50Ms: h.quantile(0.5) / 1000, p99Ms: h.quantile(0.99) / 1000, count: r.count }
        sides[side].push(figure)
        if (r.failures > 0 || r.mismatches > 0) problems.push(`round trips, ${side}, run ${run}: ${r.failures} players stopped (socket closed), ${r.mismatches} echoes differed`)
        say(`  run ${run} ${side}: ${Math.round(figure.rate)} rt/s, p50 ${figure.p50Ms.toFixed(2)} ms, p99 ${figure.p99Ms.toFixed(2)} ms`)
      }
    }
    for (const side of ['single', 'pool'] as const) {
      const status = await clients.call<{ closes: Record<string, number> }>('status', { name: side })
      if (Object.keys(status.closes).length > 0) problems.push(`round trips, ${side}: players closed: ${JSON.stringify(status.closes)}`)
      await clients.call('disconnect', { name: side })
    }
    const summary = (side: 'single' | 'pool'): RoundTripSide => ({
      runs: sides[side],
      rate: median(sides[side].map((r) => r.rate)),
      p50Ms: median(sides[side].map((r) => r.p50Ms)),
      p99Ms: median(sides[side].map((r) => r.p99Ms)),
      playersPerMember: spread[side]
    })
    return { single: summary('single'), pool: summary('pool') }
  } finally {
    await stopRig(rigs.single)
    await stopRig(rigs.pool)
  }
}

// ---------------------------------------------------------------- 2 and 3. a kill

export interface KillRun {
  kill: number
  /** Players the killed member held. */
  players: number
  /** From the SIGKILL to the first and the last of its players' `open` on a survivor (wall clock, ms). */
  firstOpenMs: number
  lastOpenMs: number
  /** lastOpenMs − failoverMs: what the failover took beyond the wait it makes on purpose. */
  beyondFailoverMs: number
  /** gatehouse_pool_rehomed_clients_total and _failovers_total, after − before. */
  rehomedMetric: number
  failoversMetric: number
  /** Streamed messages: sent, echoed back, missing once the stream stopped and settled. */
  sent?: number
  echoed?: number
  missing?: number
  /** Player sockets closed during the run, by code (none expected). */
  closes: Record<string, number>
}

/** SIGKILLs `victim` and waits until the survivors have an `open` for each of `users` (its players). */
async function killAndWatch (rig: Rig, victim: Member, users: string[], options: PoolBenchOptions): Promise<Omit<KillRun, 'kill' | 'closes'>> {
  const survivors = rig.members.filter((m) => m !== victim)
  const rehomedBefore = await metric(rig, 'gatehouse_pool_rehomed_clients_total')
  const failoversBefore = await metric(rig, 'gatehouse_pool_failovers_total')
  const killedAt = wallNow()
  victim.child.process.kill('SIGKILL')
  const wanted = new Set(users)
  const times = new Map<string, number>()
  const deadline = Date.now() + options.failoverMs + 60000
  while (times.size < wanted.size) {
    if (Date.now() > deadline) throw new Error(`${rig.name}: ${wanted.size - times.size} of ${wanted.size} players of the killed member had no open on a survivor 60 s past failoverMs`)
    await sleep(20)
    for (const member of survivors) {
      for (const [user, at] of await member.child.call<Array<[string, number]>>('opensSince', { since: killedAt })) {
        if (wanted.has(user)) times.set(user, at)
      }
    }
  }
  const opens = [...times.values()]
  const lastOpenMs = Math.max(...opens) - killedAt
  // the counters move as the failover is decided; read them once it has been
  await sleep(200)
  return {
    players: users.length,
    firstOpenMs: Math.min(...opens) - killedAt,
    lastOpenMs,
    beyondFailoverMs: lastOpenMs - options.failoverMs,
    rehomedMetric: await metric(rig, 'gatehouse_pool_rehomed_clients_total') - rehomedBefore,
    failoversMetric: await metric(rig, 'gatehouse_pool_failovers_total') - failoversBefore
  }
}

async function failovers (options: PoolBenchOptions, clients: Child): Promise<KillRun[]> {
  say(`failover: ${options.kills} kills, each of the busiest of 3 members under ${options.killClients} players streaming a message each ${options.streamIntervalMs} ms, failoverMs ${options.failoverMs}`)
  const runs: KillRun[] = []
  for (let kill = 1; kill <= options.kills; kill++) {
    const group = `kill${kill}`
    const rig = await startRig(group, [1, 1, 1], options.failoverMs)
    try {
      await connect(clients, rig, group, 0, options.killClients)
      await opensReached(rig, rig.members, options.killClients)
      await clients.call('startStream', { name: group, intervalMs: options.streamIntervalMs })
      await sleep(1000)
      const held = await Promise.all(rig.members.map((m) => m.child.call<string[]>('users')))
      const busiest = held.reduce((best, users, i) => users.length > held[best].length ? i : best, 0)
      const watched = await killAndWatch(rig, rig.members[busiest], held[busiest], options)
      await sleep(500)
      await clients.call('stopStream', { name: group })
      // what was in flight comes back, or not: until every echo is in, or 10 s
      let stream = await clients.call<{ sent: number, echoed: number, missing: number, missingBy: string[], closes: Record<string, number> }>('streamStatus', { name: group })
      for (let waited = 0; stream.missing > 0 && waited < 10000; waited += 100) {
        await sleep(100)
        stream = await clients.call('streamStatus', { name: group })
      }
      const run: KillRun = { kill, ...watched, sent: stream.sent, echoed: stream.echoed, missing: stream.missing, closes: stream.closes }
      runs.push(run)
      say(`  kill ${kill}: ${run.players} players of m${busiest + 1} re-opened ${run.firstOpenMs.toFixed(0)}-${run.lastOpenMs.toFixed(0)} ms after the SIGKILL (${run.beyondFailoverMs.toFixed(0)} ms past failoverMs); ${stream.echoed}/${stream.sent} echoed`)
      if (stream.missing > 0) problems.push(`kill ${kill}: ${stream.missing} of ${stream.sent} streamed messages never echoed (players ${stream.missingBy.join(', ')})`)
      if (Object.keys(stream.closes).length > 0) problems.push(`kill ${kill}: players closed: ${JSON.stringify(stream.closes)}`)
      if (run.rehomedMetric !== run.players) problems.push(`kill ${kill}: gatehouse_pool_rehomed_clients_total rose by ${run.rehomedMetric}, the killed member held ${run.players}`)
      if (run.failoversMetric !== 1) problems.push(`kill ${kill}: gatehouse_pool_failovers_total rose by ${run.failoversMetric}, not 1`)
    } finally {
      await clients.call('disconnect', { name: group })
      await stopRig(rig)
    }
  }
  return runs
}

export interface RehomeRun extends KillRun {
  /** Players per second, first to last `open` on the heirs. */
  rate: number
  /** Players per second from the failover's start (SIGKILL + failoverMs) to the last `open`. */
  rateFromFailover: number
  totalPlayers: number
  weights: number[]
}

/** The heavy member's share of keys, by its weight, is about 8 in 10: enough players are opened until it holds `rehomeClients`. */
const REHOME_WEIGHTS = [8, 1, 1]

async function rehome (options: PoolBenchOptions, clients: Child): Promise<RehomeRun> {
  say(`re-homing: ${options.rehomeClients} idle players on the killed member (weights ${REHOME_WEIGHTS.join(', ')}), failoverMs ${options.failoverMs}`)
  const group = 'rehome'
  const rig = await startRig(group, REHOME_WEIGHTS, options.failoverMs)
  const [victim] = rig.members
  try {
    let opened = 0
    let held = 0
    while (held < options.rehomeClients) {
      // whole matches: an even batch
      const batch = Math.max(20, Math.ceil((options.rehomeClients - held) * 1.2 / 2) * 2)
      await connect(clients, rig, group, opened, batch)
      opened += batch
      await opensReached(rig, rig.members, opened)
      held = (await victim.child.call<MemberStats>('stats')).users
      say(`  ${opened} players open, ${held} on ${victim.id}`)
    }
    const users = await victim.child.call<string[]>('users')
    const watched = await killAndWatch(rig, victim, users, options)
    const status = await clients.call<{ closes: Record<string, number> }>('status', { name: group })
    const span = (watched.lastOpenMs - watched.firstOpenMs) / 1000
    const run: RehomeRun = {
      kill: 1,
      ...watched,
      closes: status.closes,
      rate: watched.players / span,
      rateFromFailover: watched.players / ((watched.lastOpenMs - options.failoverMs) / 1000),
      totalPlayers: opened,
      weights: REHOME_WEIGHTS
    }
    say(`  ${run.players} players re-homed: first open ${run.firstOpenMs.toFixed(0)} ms, last ${run.lastOpenMs.toFixed(0)} ms after the SIGKILL: ${Math.round(run.rate)} players/s`)
    if (Object.keys(status.closes).length > 0) problems.push(`re-homing: players closed: ${JSON.stringify(status.closes)}`)
    if (run.rehomedMetric !== run.players) problems.push(`re-homing: gatehouse_pool_rehomed_clients_total rose by ${run.rehomedMetric}, the killed member held ${run.players}`)
    return run
  } finally {
    await clients.call('disconnect', { name: group })
    await stopRig(rig)
  }
}

// ---------------------------------------------------------------- report

export interface PoolBenchResult {
  options: PoolBenchOptions
  conditions: Record<string, unknown>
  roundTrip: { single: RoundTripSide, pool: RoundTripSide, ratio: { rate: number, p50: number, p99: number } }
  failover: { runs: KillRun[], medianMs: number, maxMs: number, beyondMedianMs: number, beyondMaxMs: number }
  rehome: RehomeRun
  problems: string[]
}

const f0 = (v: number): string => Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a'
const f2 = (v: number): string => Number.isFinite(v) ? v.toFixed(2) : 'n/a'

function table (rows: string[][]): string {
  return [`| ${rows[0].join(' | ')} |`, `|${rows[0].map(() => '---').join('|')}|`, ...rows.slice(1).map((r) => `| ${r.join(' | ')} |`)].join('\n')
}

export function renderMarkdown (r: PoolBenchResult): string {
  const o = r.options
  const k = r.conditions
  const rt = r.roundTrip
  const fo = r.failover
  const rh = r.rehome
  const load = (v: unknown): string => (v as number[]).map((x) => x.toFixed(2)).join(' ')
  return `# Gatehouse backend pools: figures (issue 12)

Produced by \`npm run bench:pools\` (bench/pools.ts) on ${k.date as string}; the run took ${k.durationSec as number} s.${o.smoke ? ' **Smoke run: tiny load, the figures mean nothing.**' : ''}

**Conditions.** ${k.nproc as number} CPUs (${k.cpu as string}), ${k.memoryGiB as number} GiB RAM, ${k.kernel as string}, Node ${k.node as string}, ws ${k.ws as string}, gatehouse ${k.gatehouse as string}. **The machine was shared**: other work (builds and test suites of other branches) ran on the same ${k.nproc as number} CPUs during the run; load average ${load(k.loadAverageBefore)} before, ${load(k.loadAverageAfter)} after. Absolute figures are therefore low and noisy; the ratios compare sides measured in the same run, interleaved. Everything on loopback: the gateway as built (dist/src \`createGateway\`, one process, logs off, rate limits out of the way), each member its own process running the backend SDK (src/sdk, \`acks: 'auto'\`, echoing every message to its sender), the players in one client process (plain \`ws\`, HS256 JWTs, one user each, 2 per match on \`/game/:matchId\`). Backend config: \`route: "params.matchId"\`, \`acks: true\`, \`failoverMs: ${o.failoverMs}\`, \`lingerMs: 30000\`, \`queue.graceMs: 60000\`.

## 1. Routing overhead: a pool of 3 versus one backend

${o.clients} players (${o.clients >> 1} matches), one ~55-byte JSON message in flight each, every echo checked byte for byte; ${o.runs} runs per side, interleaved (the side going first alternates), each ${o.warmupMs} ms of warm-up then ${o.durationMs} ms counted; figures are medians of the runs. The gateway config is the same but for \`backend.url\` (single) versus \`backend.urls\` of 3 members. Players per member: single ${rt.single.playersPerMember.join('')}, pool ${rt.pool.playersPerMember.join(' / ')}.

${table([
    ['', 'round trips/s', 'p50 ms', 'p99 ms'],
    ['single backend', f0(rt.single.rate), f2(rt.single.p50Ms), f2(rt.single.p99Ms)],
    ['pool of 3', f0(rt.pool.rate), f2(rt.pool.p50Ms), f2(rt.pool.p99Ms)],
    ['**pool ÷ single**', `**${f2(rt.ratio.rate)}**`, `**${f2(rt.ratio.p50)}**`, `**${f2(rt.ratio.p99)}**`]
  ])}

Every run:

${table([
    ['run', 'single rt/s', 'single p50 / p99 ms', 'pool rt/s', 'pool p50 / p99 ms'],
    ...rt.single.runs.map((s, i) => {
      const p = rt.pool.runs[i]
      return [String(s.run), f0(s.rate), `${f2(s.p50Ms)} / ${f2(s.p99Ms)}`, f0(p?.rate ?? NaN), `${f2(p?.p50Ms ?? NaN)} / ${f2(p?.p99Ms ?? NaN)}`]
    })
  ])}

## 2. Failover time over ${fo.runs.length} kills

Each kill: a fresh gateway and 3 equal members; ${o.killClients} players (${o.killClients >> 1} matches) each streaming a numbered message every ${o.streamIntervalMs} ms (acknowledged delivery); after 1 s the member holding the most players is SIGKILLed. Measured from the backends' side: the time from the SIGKILL to the last \`open\` of its players on a survivor (each member notes when every \`open\` reached it; one machine, one wall clock). **\`failoverMs\` is ${o.failoverMs} ms**: that much of each figure is the gateway waiting on purpose for the member to come back; the rest is noticing the death, deciding, and re-opening.

${table([
    ['', 'ms'],
    ['SIGKILL → every player re-opened, median', f0(fo.medianMs)],
    ['SIGKILL → every player re-opened, max', f0(fo.maxMs)],
    [`of which \`failoverMs\` (waited on purpose)`, f0(o.failoverMs)],
    ['beyond failoverMs, median / max', `${f0(fo.beyondMedianMs)} / ${f0(fo.beyondMaxMs)}`]
  ])}

Every kill (a message is missing when its echo never came back once the stream stopped; with acks none should be):

${table([
    ['kill', 'players on the killed member', 'first / last open on a survivor (ms after SIGKILL)', 'beyond failoverMs (ms)', 'rehomed_clients_total Δ', 'failovers_total Δ', 'messages sent / echoed / missing', 'players closed'],
    ...fo.runs.map((x) => [String(x.kill), String(x.players), `${f0(x.firstOpenMs)} / ${f0(x.lastOpenMs)}`, f0(x.beyondFailoverMs), String(x.rehomedMetric), String(x.failoversMetric),
      `${x.sent ?? 'n/a'} / ${x.echoed ?? 'n/a'} / ${x.missing ?? 'n/a'}`, Object.keys(x.closes).length === 0 ? '0' : JSON.stringify(x.closes)])
  ])}

## 3. Re-homed clients per second

A pool of 3 with weights ${rh.weights.join(', ')}, so the first member wins most keys; ${f0(rh.totalPlayers)} idle players opened until it held ${f0(rh.players)}; then it is SIGKILLed.

${table([
    ['', ''],
    ['players on the killed member', f0(rh.players)],
    ['first / last `open` on the heirs (ms after SIGKILL)', `${f0(rh.firstOpenMs)} / ${f0(rh.lastOpenMs)}`],
    ['**re-homed players per second** (first to last open on the heirs)', `**${f0(rh.rate)}**`],
    [`players per second from the failover's start (SIGKILL + failoverMs ${o.failoverMs}) to the last open`, f0(rh.rateFromFailover)],
    ['gatehouse_pool_rehomed_clients_total Δ', f0(rh.rehomedMetric)],
    ['players closed', Object.keys(rh.closes).length === 0 ? '0' : JSON.stringify(rh.closes)]
  ])}
${r.problems.length > 0 ? `\nProblems seen:\n\n${r.problems.map((p) => `- ${p.replace(/\n/g, ' ')}`).join('\n')}\n` : '\nNo problems seen: every echo intact, no player closed, every streamed message echoed after each failover, the rehomed counter equal to the players the killed member held, one failover counted per kill.\n'}
Knobs: ${KNOBS.replace(/\n/g, ' ')}. Raw figures: pools-results.json.
`
}

// ---------------------------------------------------------------- main

async function main (): Promise<void> {
  const options = optionsFromEnv()
  const startedAt = Date.now()
  const loadBefore = os.loadavg()
  say(`knobs: ${KNOBS.replace(/\n/g, ' ')}`)
  const { child: clients } = await fork('client process', CLIENTS)
  try {
    const rt = await roundTrips(options, clients)
    const runs = await failovers(options, clients)
    const rehomeRun = await rehome(options, clients)
    const result: PoolBenchResult = {
      options: { ...options, out: relative(REPO, options.out) || '.' },
      conditions: {
        ...machineConditions(startedAt),
        sharedMachine: 'other helpers\' builds and tests ran on the same CPUs during this run',
        loadAverageBefore: loadBefore,
        loadAverageAfter: os.loadavg(),
        durationSec: Math.round((Date.now() - startedAt) / 1000)
      },
      roundTrip: { ...rt, ratio: { rate: rt.pool.rate / rt.single.rate, p50: rt.pool.p50Ms / rt.single.p50Ms, p99: rt.pool.p99Ms / rt.single.p99Ms } },
      failover: {
        runs,
        medianMs: median(runs.map((x) => x.lastOpenMs)),
        maxMs: Math.max(...runs.map((x) => x.lastOpenMs)),
        beyondMedianMs: median(runs.map((x) => x.beyondFailoverMs)),
        beyondMaxMs: Math.max(...runs.map((x) => x.beyondFailoverMs))
      },
      rehome: rehomeRun,
      problems
    }
    mkdirSync(options.out, { recursive: true })
    writeFileSync(join(options.out, 'pools-results.json'), `${JSON.stringify(result, null, 2)}\n`)
    const md = renderMarkdown(result)
    writeFileSync(join(options.out, 'pools-results.md'), md)
    process.stdout.write(`${md}\nwrote ${join(options.out, 'pools-results.md')} and pools-results.json\n`)
    if (problems.length > 0) process.exitCode = 1
  } finally {
    await Promise.all([...children].map((c) => c.stop()))
  }
}

try {
  await main()
} catch (err) {
  say(`failed: ${(err as Error).stack ?? String(err)}`)
  await Promise.all([...children].map((c) => c.stop()))
  process.exitCode = 1
}
process.exit()
