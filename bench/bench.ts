/**
 * The side-by-side benchmark (issue 5): starts every contender on loopback,
 * drives them with the same load generator in one run, and returns the
 * median figures. Runs of different contenders are interleaved, so noise
 * from a shared machine falls on all of them alike.
 */
import { spawnSync } from 'node:child_process'
import os from 'node:os'
import { machineConditions, type MachineConditions } from './conditions.js'
import { type Contender, type ContenderName, startContender } from './contenders.js'
import { ensureNginx } from './nginx.js'
import type { BenchOptions } from './options.js'
import { LoadPool, type HandshakeResult, type RoundTripResult } from './load/pool.js'
import { cpuMs, tcpConnections, totalRss, rssBytes } from './procfs.js'
import { median } from './stats.js'
import { storms, type StormFigures } from './storm.js'

/** `cpuUsPerRoundTrip`: user + system CPU of every server process (hop and backend) in the measured window ÷ its round trips. */
export interface RoundTripRun extends RoundTripResult {
  cpuUsPerRoundTrip: number
  /** The hop's share (gateway, nginx), when the hop is not the backend itself. */
  hopCpuUsPerRoundTrip?: number
  /** gatehouse: `message` events per frame its backend received (how well the link batched). */
  eventsPerLinkFrame?: number
}
export interface RoundTripFigure { rate: number, p50Ms: number, p99Ms: number, cpuUsPerRoundTrip: number, runs: RoundTripRun[] }
export interface HandshakeFigure { rate: number, p50Ms: number, p99Ms: number, runs: HandshakeResult[] }
export interface IdleSample { hopBytesPerConn: number, hopRssBytes: number, backendRssBytes: number, backendSockets: number }
export interface IdleFigure extends IdleSample { runs: IdleSample[] }
export interface BroadcastRun { completionMs: number, cpuMs: number }
export interface BroadcastFigure extends BroadcastRun { clients: number, runs: BroadcastRun[] }

export interface ContenderFigures {
  roundTrip: Record<number, RoundTripFigure>
  handshake?: HandshakeFigure
  idle: Record<number, IdleFigure>
  broadcast?: BroadcastFigure
}

export interface Conditions extends MachineConditions {
  nginx?: string
  /** The gatehouse-b contender's build, when there is one. */
  gatehouseB?: string
  loadAverageBefore: number[]
  loadAverageAfter: number[]
  durationSec: number
}

export interface BenchResult {
  options: BenchOptions
  conditions: Conditions
  /** Contenders measured, in table order. */
  contenders: ContenderName[]
  skipped: Array<{ name: ContenderName, why: string }>
  figures: Partial<Record<ContenderName, ContenderFigures>>
  /** (f) the reconnect storm, when it ran (bench/storm.ts). */
  storm?: StormFigures
  /** Echoes that came back wrong, answers that never came, sockets that closed under load. */
  problems: string[]
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The order of contenders for run `i`: rotated, so none always goes first. */
function rotate<T> (items: readonly T[], i: number): T[] {
  const k = i % Math.max(1, items.length)
  return [...items.slice(k), ...items.slice(0, k)]
}

function nginxVersion (binary: string): string {
  const out = spawnSync(binary, ['-v'], { encoding: 'utf8' })
  return (out.stderr || out.stdout).trim().replace(/^nginx version: /, '')
}

export async function runBench (options: BenchOptions, say: (line: string) => void = () => {}): Promise<BenchResult> {
  const started = Date.now()
  const loadBefore = os.loadavg()
  const skipped: BenchResult['skipped'] = []
  let contenders = [...options.contenders]
  let nginxBinary: string | undefined
  if (contenders.includes('nginx')) {
    const found = ensureNginx(options.nginx === 'install', say)
    if ('path' in found) {
      nginxBinary = found.path
    } else {
      if (options.nginx === 'install') throw new Error(found.missing)
      say(`nginx contender skipped: ${found.missing}`)
      skipped.push({ name: 'nginx', why: found.missing })
      contenders = contenders.filter((c) => c !== 'nginx')
    }
  }
  const startOptions = { nginxBinary, nginxWorkers: options.nginxWorkers, cpuProfDir: options.cpuProfDir, gatehouseB: options.gatehouseB, gatehouseBRaw: options.gatehouseBRaw, gatehouseBFlags: options.gatehouseBFlags, linkMask: options.linkMask }
  const figures: BenchResult['figures'] = {}
  for (const name of contenders) figures[name] = { roundTrip: {}, idle: {} }
  const problems: string[] = []
  const pool = await LoadPool.start(options.workers)
  let storm: StormFigures | undefined
  try {
    if (options.workloads.some((w) => w !== 'idle' && w !== 'storm')) {
      say(`starting ${contenders.join(', ')}`)
      const running: Contender[] = []
      try {
        for (const name of contenders) running.push(await startContender(name, startOptions))
        if (options.workloads.includes('throughput')) await roundTrips(options, pool, running, figures, problems, say)
        if (options.workloads.includes('handshake')) await handshakes(options, pool, running, figures, problems, say)
        if (options.workloads.includes('broadcast')) await broadcasts(options, pool, running, figures, problems, say)
      } finally {
        for (const contender of running) await contender.stop()
      }
    }
    if (options.workloads.includes('idle')) await idle(options, pool, contenders, startOptions, figures, say)
    if (options.workloads.includes('storm')) storm = await storms(options, pool, contenders, problems, say)
  } finally {
    await pool.stop()
  }

  return {
    options,
    conditions: {
      ...machineConditions(started),
      nginx: nginxBinary ? nginxVersion(nginxBinary) : undefined,
      gatehouseB: options.gatehouseB,
      loadAverageBefore: loadBefore,
      loadAverageAfter: os.loadavg(),
      durationSec: Math.round((Date.now() - started) / 1000)
    },
    contenders,
    skipped,
    figures,
    storm,
    problems
  }
}

/** (a) Round trips: every client keeps one 64-byte JSON message in flight. */
async function roundTrips (options: BenchOptions, pool: LoadPool, running: Contender[], figures: BenchResult['figures'], problems: string[], say: (line: string) => void): Promise<void> {
  for (const clients of options.clientCounts) {
    say(`(a) round trips, ${clients} clients: connecting`)
    for (const c of running) {
      const users = Array.from({ length: clients }, (_, i) => `rt${clients}-${c.name}-${i}`)
      await pool.connect(`rt-${c.name}`, c.protocol, c.url, users, { concurrency: 128, payloadBytes: options.payloadBytes })
    }
    // one unmeasured window each first: a fresh process's first seconds run cold (JIT), which is not what is compared
    for (const c of running) await pool.roundTrip(`rt-${c.name}`, 0, Math.min(2000, options.warmupMs + options.durationMs))
    const runs = new Map<ContenderName, RoundTripRun[]>(running.map((c) => [c.name, []]))
    for (let run = 0; run < options.runs; run++) {
      for (const c of rotate(running, run)) {
        const hopPids = c.hopPids().filter((pid) => pid !== c.backendPid)
        const pids = [...hopPids, c.backendPid]
        const pending = pool.roundTrip(`rt-${c.name}`, options.warmupMs, options.durationMs)
        // CPU over the measured window only: read when the warm-up ends and when the window's answers are in
        await sleep(options.warmupMs)
        const cpuBefore = cpuMs(pids)
        const hopCpuBefore = cpuMs(hopPids)
        const linkBefore = await c.linkStats?.()
        const result = await pending
        const perRoundTrip = (ms: number): number => ms * 1000 / Math.max(1, result.rate * options.durationMs / 1000)
        const r: RoundTripRun = { ...result, cpuUsPerRoundTrip: perRoundTrip(cpuMs(pids) - cpuBefore) }
        if (hopPids.length > 0) r.hopCpuUsPerRoundTrip = perRoundTrip(cpuMs(hopPids) - hopCpuBefore)
        const linkAfter = await c.linkStats?.()
        if (linkBefore && linkAfter) r.eventsPerLinkFrame = (linkAfter.messages - linkBefore.messages) / Math.max(1, linkAfter.frames - linkBefore.frames)
        runs.get(c.name)?.push(r)
        say(`(a) ${clients} clients, run ${run + 1}/${options.runs}, ${c.name}: ${Math.round(r.rate)} round trips/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, server CPU ${r.cpuUsPerRoundTrip.toFixed(1)} µs per round trip${r.hopCpuUsPerRoundTrip === undefined ? '' : ` (hop ${r.hopCpuUsPerRoundTrip.toFixed(1)})`}${r.eventsPerLinkFrame === undefined ? '' : `, ${r.eventsPerLinkFrame.toFixed(1)} messages per link frame`}`)
        if (r.mismatched > 0) problems.push(`${c.name}, ${clients} clients: ${r.mismatched} echoes differed from what was sent`)
        if (r.unanswered > 0) problems.push(`${c.name}, ${clients} clients: ${r.unanswered} messages never answered`)
        if (r.closes > 0) problems.push(`${c.name}, ${clients} clients: ${r.closes} sockets closed under load`)
        await sleep(100)
      }
    }
    for (const c of running) {
      const list = runs.get(c.name) ?? []
      const fig = figures[c.name] as ContenderFigures
      fig.roundTrip[clients] = { rate: median(list.map((r) => r.rate)), p50Ms: median(list.map((r) => r.p50Ms)), p99Ms: median(list.map((r) => r.p99Ms)), cpuUsPerRoundTrip: median(list.map((r) => r.cpuUsPerRoundTrip)), runs: list }
      await pool.disconnect(`rt-${c.name}`)
    }
    await sleep(500)
  }
}

/** (b) Handshake rate: open, drop, open the next; tokens signed before the clock starts. */
async function handshakes (options: BenchOptions, pool: LoadPool, running: Contender[], figures: BenchResult['figures'], problems: string[], say: (line: string) => void): Promise<void> {
  const runs = new Map<ContenderName, HandshakeResult[]>(running.map((c) => [c.name, []]))
  // more tokens than any contender can use in the window (up to 20,000 handshakes/s)
  const tokens = Math.max(1000, Math.ceil(options.handshakeMs / 1000 * 20000))
  // an unmeasured window first: a fresh process's first thousands of handshakes run cold (JIT, pools)
  const warmupMs = Math.min(1000, options.handshakeMs)
  for (const c of running) {
    const users = Array.from({ length: Math.ceil(warmupMs / 1000 * 20000) }, (_, i) => `hswarm-${c.name}-${i}`)
    await pool.handshake(c.protocol, c.url, users, options.handshakeConcurrency, warmupMs)
    await sleep(300)
  }
  for (let run = 0; run < options.runs; run++) {
    for (const c of rotate(running, run)) {
      const users = Array.from({ length: tokens }, (_, i) => `hs${run}-${c.name}-${i}`)
      const r = await pool.handshake(c.protocol, c.url, users, options.handshakeConcurrency, options.handshakeMs)
      runs.get(c.name)?.push(r)
      say(`(b) handshakes, run ${run + 1}/${options.runs}, ${c.name}: ${Math.round(r.rate)}/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms${r.failed ? `, ${r.failed} failed (${r.errors.join('; ')})` : ''}`)
      if (r.failed > 0) problems.push(`${c.name}: ${r.failed} handshakes failed (${r.errors.join('; ')})`)
      // let the server finish the closes of the dropped sockets before the next window
      await sleep(500)
    }
  }
  for (const c of running) {
    const list = runs.get(c.name) ?? []
    ;(figures[c.name] as ContenderFigures).handshake = { rate: median(list.map((r) => r.rate)), p50Ms: median(list.map((r) => r.p50Ms)), p99Ms: median(list.map((r) => r.p99Ms)), runs: list }
  }
}

/**
 * (e) Broadcast: every contender holds the same number of clients at once;
 * in each run its game end (the echo server, or gatehouse's backend with one
 * `send` to `all`) sends one message to all of them. Completion is the last
 * client's receipt − the send time (wall clocks of one machine); CPU is user +
 * system time of every server process (hop and backend) from just before the
 * send until the last receipt. Every client must get it exactly once. One
 * unmeasured broadcast per contender first.
 */
async function broadcasts (options: BenchOptions, pool: LoadPool, running: Contender[], figures: BenchResult['figures'], problems: string[], say: (line: string) => void): Promise<void> {
  const clients = options.broadcastClients
  say(`(e) broadcast, ${clients} clients per contender: connecting`)
  for (const c of running) {
    const users = Array.from({ length: clients }, (_, i) => `bc-${c.name}-${i}`)
    await pool.connect(`bc-${c.name}`, c.protocol, c.url, users, { concurrency: 256, payloadBytes: options.payloadBytes })
  }
  await sleep(options.settleMs)
  const runs = new Map<ContenderName, BroadcastRun[]>(running.map((c) => [c.name, []]))
  let id = 0
  for (let run = -1; run < options.runs; run++) {
    for (const c of rotate(running, Math.max(0, run))) {
      const group = `bc-${c.name}`
      const pids = [...c.hopPids(), c.backendPid]
      id++
      await pool.armBroadcast(group, id)
      const cpuBefore = cpuMs(pids)
      const { sentAt } = await c.broadcast(id)
      const got = await pool.collectBroadcast(group, 30000)
      const r: BroadcastRun = { completionMs: got.lastAt - sentAt, cpuMs: cpuMs(pids) - cpuBefore }
      if (got.missing > 0) problems.push(`${c.name}: broadcast ${id} never reached ${got.missing} of ${clients} clients`)
      if (got.duplicates > 0) problems.push(`${c.name}: broadcast ${id} reached clients ${got.duplicates} times more than once`)
      if (run >= 0) {
        runs.get(c.name)?.push(r)
        say(`(e) broadcast to ${clients}, run ${run + 1}/${options.runs}, ${c.name}: ${r.completionMs.toFixed(1)} ms, server CPU ${r.cpuMs} ms`)
      }
      await sleep(300)
    }
  }
  for (const c of running) {
    const list = runs.get(c.name) ?? []
    ;(figures[c.name] as ContenderFigures).broadcast = { clients, completionMs: median(list.map((r) => r.completionMs)), cpuMs: median(list.map((r) => r.cpuMs)), runs: list }
    await pool.disconnect(`bc-${c.name}`)
  }
}

/**
 * (c, d) Idle authenticated connections: fresh processes per run; memory is
 * read after a settle pause and a full GC in every Node process, before any
 * connection and at each count. Per-connection cost is the growth divided by
 * the count.
 */
async function idle (options: BenchOptions, pool: LoadPool, contenders: ContenderName[], startOptions: Parameters<typeof startContender>[1], figures: BenchResult['figures'], say: (line: string) => void): Promise<void> {
  const samples = new Map<string, IdleSample[]>()
  for (let run = 0; run < options.idleRuns; run++) {
    for (const name of rotate(contenders, run)) {
      const c = await startContender(name, startOptions)
      try {
        await sleep(options.settleMs)
        await c.gc()
        await sleep(100)
        const base = totalRss(c.hopPids())
        let held = 0
        for (const count of options.idleCounts) {
          const users = Array.from({ length: count - held }, (_, i) => `idle${run}-${name}-${held + i}`)
          await pool.connect(`idle-${name}`, c.protocol, c.url, users, { concurrency: 256, payloadBytes: options.payloadBytes })
          held = count
          await sleep(options.settleMs)
          await c.gc()
          await sleep(100)
          const hop = totalRss(c.hopPids())
          const sample: IdleSample = {
            hopBytesPerConn: (hop - base) / count,
            hopRssBytes: hop,
            backendRssBytes: rssBytes(c.backendPid),
            backendSockets: tcpConnections(c.backendPid)
          }
          say(`(c) idle, run ${run + 1}/${options.idleRuns}, ${name}, ${count} clients: ${(sample.hopBytesPerConn / 1024).toFixed(2)} KiB per connection (RSS ${(hop / 2 ** 20).toFixed(1)} MiB); backend RSS ${(sample.backendRssBytes / 2 ** 20).toFixed(1)} MiB, ${sample.backendSockets} TCP connections`)
          const key = `${name}:${count}`
          samples.set(key, [...(samples.get(key) ?? []), sample])
        }
        await pool.disconnect(`idle-${name}`)
      } finally {
        await c.stop()
      }
    }
  }
  for (const name of contenders) {
    for (const count of options.idleCounts) {
      const list = samples.get(`${name}:${count}`) ?? []
      ;(figures[name] as ContenderFigures).idle[count] = {
        hopBytesPerConn: median(list.map((s) => s.hopBytesPerConn)),
        hopRssBytes: median(list.map((s) => s.hopRssBytes)),
        backendRssBytes: median(list.map((s) => s.backendRssBytes)),
        backendSockets: median(list.map((s) => s.backendSockets)),
        runs: list
      }
    }
  }
}
