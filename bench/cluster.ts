/**
 * `npm run bench:cluster`: issue 4's scale figure. N gateway processes
 * (`node dist/src/cli.js --config FILE`, one per node) share presence over a
 * Redis started here, hold tens of thousands of authenticated idle clients
 * (spread over several client processes, as one may hold at most ~20,000
 * open files), and relay a broadcast (`send` with `all: true`, sent down ONE
 * node's link) to every one of them. The same broadcast on ONE node alone
 * (no Redis) is measured first in the same run as the baseline.
 *
 * Writes bench/cluster-results.md and bench/cluster-results.json (or into
 * CLUSTER_OUT). Knobs: see KNOBS below.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { machineConditions, packageVersion } from './conditions.js'
import { join, relative } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { ECHO_SERVER, gatewayConfig } from './contenders.js'
import { LINK_PATH, PATH } from './endpoints.js'
import { forkChild, type Child } from './ipc.js'
import type { Target } from './load/broadcast-worker.js'
import { cpuMs, rssBytes } from './procfs.js'
import { median } from './stats.js'
import { eventually } from '../test/helpers/cluster.js'
import { onFreePort } from '../test/helpers/ports.js'

const KNOBS = `CLUSTER_CLIENTS (45000), CLUSTER_NODES (3), CLUSTER_SINGLE_CLIENTS (15000), CLUSTER_BROADCASTS (5),
CLUSTER_WORKERS (auto: one client process per ~12,000 sockets, at least 2), CLUSTER_CONCURRENCY (256 handshakes in flight, all client processes),
CLUSTER_TIMEOUT_MS (30000 per broadcast), CLUSTER_OUT (bench/), CLUSTER_SMOKE=1 (tiny run into a temp dir), REDIS_SERVER (/usr/bin/redis-server),
CLUSTER_DIRECT=0 (leave out the bare ws loop baseline)`

const SOURCE_DIR = fileURLToPath(new URL('../../bench/', import.meta.url))
const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url))
const BACKEND = fileURLToPath(new URL('./servers/broadcast-backend.js', import.meta.url))
const WORKER = fileURLToPath(new URL('./load/broadcast-worker.js', import.meta.url))
const REPO = fileURLToPath(new URL('../../', import.meta.url))

interface Options {
  clients: number
  nodes: number
  singleClients: number
  broadcasts: number
  workers: number
  concurrency: number
  timeoutMs: number
  out: string
  smoke: boolean
  redisServer: string
  /** Whether the bare ws loop (the echo server's broadcast) is measured too, with singleClients clients. */
  direct: boolean
}

function intKnob (env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, not "${raw}"`)
  return value
}

function optionsFromEnv (env: NodeJS.ProcessEnv = process.env): Options {
  const smoke = env.CLUSTER_SMOKE === '1'
  const clients = intKnob(env, 'CLUSTER_CLIENTS', smoke ? 600 : 45000)
  const singleClients = intKnob(env, 'CLUSTER_SINGLE_CLIENTS', smoke ? 200 : 15000)
  const nodes = intKnob(env, 'CLUSTER_NODES', 3)
  return {
    clients,
    nodes,
    singleClients,
    broadcasts: intKnob(env, 'CLUSTER_BROADCASTS', smoke ? 2 : 5),
    workers: intKnob(env, 'CLUSTER_WORKERS', Math.max(2, Math.ceil(Math.max(clients, singleClients) / 12000))),
    concurrency: intKnob(env, 'CLUSTER_CONCURRENCY', 256),
    timeoutMs: intKnob(env, 'CLUSTER_TIMEOUT_MS', 30000),
    out: env.CLUSTER_OUT ?? (smoke ? mkdtempSync(join(os.tmpdir(), 'gatehouse-cluster-smoke-')) : SOURCE_DIR),
    smoke,
    redisServer: env.REDIS_SERVER ?? '/usr/bin/redis-server',
    direct: env.CLUSTER_DIRECT !== '0'
  }
}

// ---------------------------------------------------------------- processes

/** Every process this bench started: killed on any exit, so a failure leaves nothing behind. */
const started = new Set<ChildProcess>()
/** Processes that could not be started (a missing binary), by the error that said so. */
const spawnErrors = new WeakMap<ChildProcess, Error>()
function track (proc: ChildProcess): ChildProcess {
  started.add(proc)
  proc.once('exit', () => started.delete(proc))
  proc.on('error', (err) => {
    spawnErrors.set(proc, err)
    started.delete(proc)
  })
  return proc
}
process.on('exit', () => {
  for (const proc of started) {
    try { proc.kill('SIGKILL') } catch {}
  }
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const say = (line: string): void => { process.stderr.write(`bench:cluster: ${line}\n`) }

async function stopProcess (proc: ChildProcess, timeoutMs = 15000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null || spawnErrors.has(proc)) return
  const gone = once(proc, 'exit')
  proc.kill('SIGTERM')
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
  await gone
  clearTimeout(timer)
}

function tail (file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}

interface RedisServer { proc: ChildProcess, port: number, client: Redis, url: string, log: string }

/** redis-server must be told its port: on EADDRINUSE (another process took it first) it starts again on another. */
async function startRedis (binary: string, dir: string): Promise<RedisServer> {
  return await onFreePort(async (port) => await startRedisOn(binary, dir, port))
}

async function startRedisOn (binary: string, dir: string, port: number): Promise<RedisServer> {
  const log = join(dir, 'redis.log')
  const fd = openSync(log, 'w')
  const proc = track(spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxclients', '10000'], { stdio: ['ignore', fd, fd] }))
  closeSync(fd)
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: null, retryStrategy: () => 50 })
  client.on('error', () => {})
  try {
    await eventually(async () => {
      const spawnError = spawnErrors.get(proc)
      if (spawnError) throw new Error(`cannot start ${binary} (set REDIS_SERVER): ${spawnError.message}`)
      if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}):\n${tail(log)}`)
      try {
        if (client.status === 'wait') await client.connect()
        return (await Promise.race([client.ping(), sleep(500).then(() => undefined)])) === 'PONG'
      } catch {
        return false
      }
    }, (answered) => answered, 10000, 'redis-server to answer PING')
  } catch (err) {
    client.disconnect()
    throw err
  }
  return { proc, port, client, url: `redis://127.0.0.1:${port}`, log }
}

/** Bytes Redis has read and written on its sockets so far, and PUBLISH commands run (INFO stats, commandstats). */
async function redisTraffic (redis: RedisServer): Promise<{ inBytes: number, outBytes: number, publishes: number }> {
  const info = `${await redis.client.info('stats')}\n${await redis.client.info('commandstats')}`
  const field = (re: RegExp): number => Number(re.exec(info)?.[1] ?? NaN)
  return { inBytes: field(/^total_net_input_bytes:(\d+)/m), outBytes: field(/^total_net_output_bytes:(\d+)/m), publishes: field(/^cmdstat_publish:calls=(\d+)/m) || 0 }
}

/** used_memory and the RSS Redis reports of itself, from INFO memory. */
async function redisMemory (redis: RedisServer): Promise<{ usedMemoryBytes: number, keys: number }> {
  const info = await redis.client.info('memory')
  const used = /^used_memory:(\d+)/m.exec(info)
  return { usedMemoryBytes: used ? Number(used[1]) : NaN, keys: await redis.client.dbsize() }
}

// ---------------------------------------------------------------- gateway nodes

interface GatewayNode { id: string, port: number, url: string, proc: ChildProcess, log: string }

function nodeConfig (id: string, port: number, backendPort: number, redisUrl: string | undefined): Record<string, unknown> {
  const base = gatewayConfig(`ws://127.0.0.1:${backendPort}${LINK_PATH}`) as { limits: Record<string, unknown> } & Record<string, unknown>
  return {
    ...base,
    server: { host: '127.0.0.1', port, nodeId: id, shutdownTimeoutMs: 5000 },
    // idle clients: no heartbeat pings during the run; room for every client on one node
    limits: { ...base.limits, maxConnections: 100000, heartbeatIntervalMs: 3600000 },
    log: { level: 'warn' },
    ...(redisUrl ? { cluster: { redis: redisUrl, name: 'bench' } } : {})
  }
}

/** A gateway node must be told its port (its log level hides the listening line): on EADDRINUSE it starts again on another. */
async function startNode (id: string, dir: string, backendPort: number, redisUrl: string | undefined): Promise<GatewayNode> {
  return await onFreePort(async (port) => await startNodeOn(id, dir, backendPort, redisUrl, port))
}

async function startNodeOn (id: string, dir: string, backendPort: number, redisUrl: string | undefined, port: number): Promise<GatewayNode> {
  const file = join(dir, `${id}.json`)
  writeFileSync(file, JSON.stringify(nodeConfig(id, port, backendPort, redisUrl), null, 2))
  const log = join(dir, `${id}.log`)
  const fd = openSync(log, 'w')
  const proc = track(spawn(process.execPath, [CLI, '--config', file], { stdio: ['ignore', fd, fd] }))
  closeSync(fd)
  const node = { id, port, url: `ws://127.0.0.1:${port}${PATH}`, proc, log }
  // ready: its backend link is up and, in a cluster, Redis joined (a node without Redis says "degraded")
  await eventually(async () => {
    if (proc.exitCode !== null) throw new Error(`gateway node ${id} exited (${proc.exitCode}):\n${tail(log)}`)
    try {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) })
      const body = await res.json() as { status?: string }
      return res.status === 200 && body.status === 'ready'
    } catch {
      return false
    }
  }, (ready) => ready, 20000, `gateway node ${id} to be ready`)
  return node
}

/** Selected counters and gauges of a node's /metrics, summed over labels other than the ones kept. */
const METRICS = ['gatehouse_connections', 'gatehouse_messages_out_total', 'gatehouse_dropped_actions_total', 'gatehouse_handshake_failures_total',
  'gatehouse_client_closes_total', 'gatehouse_broker_errors_total', 'gatehouse_cluster_claims_total', 'gatehouse_cluster_forwards_total', 'gatehouse_link_reconnects_total']

async function nodeMetrics (node: GatewayNode): Promise<Record<string, number>> {
  const res = await fetch(`http://127.0.0.1:${node.port}/metrics`, { signal: AbortSignal.timeout(10000) })
  const text = await res.text()
  const out: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (!match || !METRICS.includes(match[1])) continue
    // keep the labels that say why (reason, outcome, direction, code, op), not the endpoint
    const labels = [...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].filter(([, k]) => k !== 'endpoint').map(([, k, v]) => `${k}=${v}`)
    const key = labels.length > 0 ? `${match[1]}{${labels.join(',')}}` : match[1]
    out[key] = (out[key] ?? 0) + Number(match[3])
  }
  return out
}

// ---------------------------------------------------------------- one phase

/** Problems seen in either phase, for the report. */
const phaseProblems: string[] = []

interface LinkStats { node: string, opens: number, closes: number, synced: number, hellos: number, frames: number, badFrames: number, up: boolean }

interface BroadcastRun {
  id: number
  /** The node whose backend link carried the one `send` to `all`. */
  via: string
  expected: number
  received: number
  /** From the backend writing the action to the last (first) client receiving it. */
  completionMs: number
  firstMs: number
  /** Per receiving node, in node order: until its last client got it. */
  byNodeMs: number[]
  /** User + system CPU of every server process (nodes, backend, Redis; per-thread schedstat) from before the send until the last client had it. */
  cpuMs: number
  /** Redis socket traffic over the same span (in: what the nodes sent it; out: what it sent them), and PUBLISH commands. */
  redis?: { inBytes: number, outBytes: number, publishes: number }
}

interface NodeFigures {
  id: string
  port: number
  pid: number
  /** gatehouse_connections on /metrics once every client was registered. */
  connections: number
  /** Backend `open` events received on this node's link. */
  opens: number
  rssBeforeBytes: number
  rssHeldBytes: number
  rssAfterBytes: number
  metricsHeld: Record<string, number>
  metricsAfter: Record<string, number>
  logLines: number
}

interface PhaseResult {
  name: 'single' | 'cluster'
  nodes: NodeFigures[]
  clients: number
  opened: number
  failed: number
  errors: string[]
  /** Handshakes completed per second while connecting (all clients ÷ the slowest client process's connect time). */
  connectMs: number
  handshakeRate: number
  /** From the last handshake to the backend having counted every `open`. */
  registeredLagMs: number
  redis?: { rssBeforeBytes: number, rssHeldBytes: number, rssAfterBytes: number, usedMemoryHeldBytes: number, keysHeld: number, keysAfterDisconnect?: number }
  /** The unmeasured first broadcast. */
  warmupBroadcast?: BroadcastRun
  broadcasts: BroadcastRun[]
  completionMedianMs: number
  completionMaxMs: number
  /** Median completion time ÷ clients, in microseconds per client. */
  perClientUs: number
  /** Median server CPU of a broadcast ÷ clients, in microseconds per client. */
  cpuPerClientUs: number
  /** Redis traffic of two readings back to back, no broadcast between (the INFO replies): what a broadcast's figure holds besides it. */
  redisIdle?: { inBytes: number, outBytes: number, publishes: number }
  clientCloses: Record<string, number>
  /** Once the clients dropped their sockets: until every link reported a `close` for every `open`. */
  closesReportedMs?: number
  /** How each node ended on SIGTERM. */
  exits?: string[]
  duplicates: number
  outOfOrder: number
  strays: number
}

/** Splits `total` as evenly as possible into `n` parts. */
const shares = (total: number, n: number): number[] => Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0))

interface Rig { options: Options, dir: string, backend: Child, backendPort: number, workers: Child[] }

async function runPhase (rig: Rig, name: 'single' | 'cluster', phaseIndex: number, nodeCount: number, clients: number, redis: RedisServer | undefined): Promise<PhaseResult> {
  const { options, backend, workers } = rig
  const problems: string[] = []
  say(`${name}: starting ${nodeCount} gateway node${nodeCount > 1 ? 's' : ''}${redis ? ` sharing ${redis.url}` : ' (no Redis)'}`)
  const nodes = await Promise.all(Array.from({ length: nodeCount }, async (_, i) => await startNode(`${name}-${i + 1}`, rig.dir, rig.backendPort, redis?.url)))
  try {
    const ids = new Set(nodes.map((n) => n.id))
    const linkStats = async (): Promise<LinkStats[]> => (await backend.call<LinkStats[]>('stats')).filter((l) => ids.has(l.node))
    await eventually(linkStats, (links) => links.filter((l) => l.up).length === nodeCount, 10000, `${name}: every node's backend link`)
    await sleep(1000)
    const rssBefore = nodes.map((n) => rssBytes(n.proc.pid as number))
    const redisRssBefore = redis ? rssBytes(redis.proc.pid as number) : 0

    // every client process: its share of the users, round-robin over the nodes, one source address per (process, node)
    const group = name
    const perWorker = shares(clients, workers.length)
    const perLane = Math.max(1, Math.ceil(options.concurrency / workers.length))
    say(`${name}: connecting ${clients} clients from ${workers.length} client processes (${perWorker.join(', ')}), ${perLane * workers.length} handshakes in flight`)
    let offset = 0
    const calls = workers.map((w, wi) => {
      const users = Array.from({ length: perWorker[wi] }, (_, i) => `${name}-user-${offset + i}`)
      offset += perWorker[wi]
      const targets: Target[] = nodes.map((n, ni) => ({ url: n.url, localAddress: `127.${phaseIndex + 1}.${wi + 1}.${ni + 1}` }))
      return w.call<{ opened: number, failed: number, errors: string[], elapsedMs: number, perTarget: number[] }>('connect', { group, targets, users, concurrency: perLane })
    })
    const progress = setInterval(() => {
      void linkStats().then((links) => say(`${name}: ${links.reduce((s, l) => s + l.opens - l.closes, 0)} clients registered at the backend`), () => {})
    }, 5000)
    let parts
    try {
      parts = await Promise.all(calls)
    } finally {
      clearInterval(progress)
    }
    const connectedAt = performance.now()
    const opened = parts.reduce((s, p) => s + p.opened, 0)
    const failed = parts.reduce((s, p) => s + p.failed, 0)
    const errors = parts.flatMap((p) => p.errors)
    const connectMs = Math.max(...parts.map((p) => p.elapsedMs))
    say(`${name}: ${opened} of ${clients} clients open in ${(connectMs / 1000).toFixed(1)} s (${Math.round(opened / (connectMs / 1000))} handshakes/s)${failed > 0 ? `; ${failed} failed: ${errors.join('; ')}` : ''}`)

    // the backend has heard `open` for every one of them
    const registered = await eventually(linkStats, (links) => links.reduce((s, l) => s + l.opens - l.closes, 0) >= opened, 60000, `${name}: the backend to count ${opened} opens`).catch(async (err: Error) => {
      problems.push(err.message)
      return await linkStats()
    })
    const registeredLagMs = performance.now() - connectedAt
    await sleep(2000)
    const metricsHeld = await Promise.all(nodes.map(nodeMetrics))
    const rssHeld = nodes.map((n) => rssBytes(n.proc.pid as number))
    const redisRssHeld = redis ? rssBytes(redis.proc.pid as number) : 0
    const redisHeld = redis ? await redisMemory(redis) : undefined
    say(`${name}: per node ${nodes.map((n, i) => `${n.id} ${metricsHeld[i].gatehouse_connections} conns, ${(rssHeld[i] / 2 ** 20).toFixed(0)} MiB`).join('; ')}${redis ? `; redis ${(redisRssHeld / 2 ** 20).toFixed(1)} MiB` : ''}`)

    // the broadcasts: one `send` to `all` down one node's link (rotating), every client must get it;
    // the first (b = -1) is an unmeasured warm-up, so a cold JIT is not what the first figure measures
    const broadcasts: BroadcastRun[] = []
    let warmup: BroadcastRun | undefined
    const serverPids = [...nodes.map((n) => n.proc.pid as number), backend.pid, ...(redis ? [redis.proc.pid as number] : [])]
    for (let b = -1; b < options.broadcasts; b++) {
      const id = (phaseIndex + 1) * 1000 + b + 1
      const via = nodes[(b + nodes.length) % nodes.length]
      const waits = workers.map((w) => w.call<{ sockets: number, received: number, firstAt: number, lastAt: number, lastAtByTarget: Array<number | null> }>('waitBroadcast', { group, id, timeoutMs: options.timeoutMs }))
      const trafficBefore = redis ? await redisTraffic(redis) : undefined
      const cpuBefore = cpuMs(serverPids)
      const { sentAt } = await backend.call<{ sentAt: number }>('broadcast', { node: via.id, id })
      const got = await Promise.all(waits)
      const cpu = cpuMs(serverPids) - cpuBefore
      const trafficAfter = redis ? await redisTraffic(redis) : undefined
      const received = got.reduce((s, g) => s + g.received, 0)
      const expected = got.reduce((s, g) => s + g.sockets, 0)
      const lastAt = Math.max(...got.map((g) => g.lastAt).filter(Number.isFinite))
      const firstAt = Math.min(...got.map((g) => g.firstAt).filter(Number.isFinite))
      // NaN crosses IPC as null
      const byNodeMs = nodes.map((_, ni) => Math.max(...got.map((g) => g.lastAtByTarget[ni] ?? NaN).filter(Number.isFinite)) - sentAt)
      const run: BroadcastRun = { id, via: via.id, expected, received, completionMs: lastAt - sentAt, firstMs: firstAt - sentAt, byNodeMs, cpuMs: cpu }
      if (trafficBefore && trafficAfter) run.redis = { inBytes: trafficAfter.inBytes - trafficBefore.inBytes, outBytes: trafficAfter.outBytes - trafficBefore.outBytes, publishes: trafficAfter.publishes - trafficBefore.publishes }
      if (b >= 0) broadcasts.push(run)
      else warmup = run
      say(`${name}: broadcast ${b < 0 ? '(warm-up)' : `${b + 1}/${options.broadcasts}`} via ${via.id}: ${received}/${expected} clients, first after ${run.firstMs.toFixed(1)} ms, all after ${run.completionMs.toFixed(1)} ms, server CPU ${cpu} ms${run.redis ? `, Redis ${run.redis.inBytes} B in / ${run.redis.outBytes} B out, ${run.redis.publishes} PUBLISH` : ''}`)
      if (received < expected) problems.push(`${name}: broadcast ${id} via ${via.id} reached ${received} of ${expected} clients within ${options.timeoutMs} ms`)
      await sleep(500)
    }
    await sleep(1000)
    const metricsAfter = await Promise.all(nodes.map(nodeMetrics))
    const rssAfter = nodes.map((n) => rssBytes(n.proc.pid as number))
    const redisRssAfter = redis ? rssBytes(redis.proc.pid as number) : 0
    const statuses = await Promise.all(workers.map((w) => w.call<{ closes: Record<string, number>, duplicates: number, outOfOrder: number, strays: number }>('status', { group })))
    const clientCloses: Record<string, number> = {}
    for (const s of statuses) for (const [code, n] of Object.entries(s.closes)) clientCloses[code] = (clientCloses[code] ?? 0) + n

    const completions = broadcasts.filter((r) => r.received === r.expected).map((r) => r.completionMs)
    const completionMedianMs = median(completions)
    let redisIdle: PhaseResult['redisIdle']
    if (redis) {
      // the same two INFO readings back to back: the bytes of the readings themselves, which every broadcast's figure holds
      const before = await redisTraffic(redis)
      const after = await redisTraffic(redis)
      redisIdle = { inBytes: after.inBytes - before.inBytes, outBytes: after.outBytes - before.outBytes, publishes: after.publishes - before.publishes }
    }
    const result: PhaseResult = {
      name,
      nodes: nodes.map((n, i) => ({
        id: n.id,
        port: n.port,
        pid: n.proc.pid as number,
        connections: metricsHeld[i].gatehouse_connections ?? NaN,
        opens: registered.find((l) => l.node === n.id)?.opens ?? 0,
        rssBeforeBytes: rssBefore[i],
        rssHeldBytes: rssHeld[i],
        rssAfterBytes: rssAfter[i],
        metricsHeld: metricsHeld[i],
        metricsAfter: metricsAfter[i],
        logLines: tail(n.log, 1e9).split('\n').filter(Boolean).length
      })),
      clients,
      opened,
      failed,
      errors,
      connectMs,
      handshakeRate: opened / (connectMs / 1000),
      registeredLagMs,
      ...(redis && redisHeld
        ? { redis: { rssBeforeBytes: redisRssBefore, rssHeldBytes: redisRssHeld, rssAfterBytes: redisRssAfter, usedMemoryHeldBytes: redisHeld.usedMemoryBytes, keysHeld: redisHeld.keys } }
        : {}),
      warmupBroadcast: warmup,
      broadcasts,
      completionMedianMs,
      completionMaxMs: completions.length > 0 ? Math.max(...completions) : NaN,
      perClientUs: completionMedianMs / opened * 1000,
      cpuPerClientUs: median(broadcasts.map((r) => r.cpuMs)) / opened * 1000,
      redisIdle,
      clientCloses,
      duplicates: statuses.reduce((s, x) => s + x.duplicates, 0),
      outOfOrder: statuses.reduce((s, x) => s + x.outOfOrder, 0),
      strays: statuses.reduce((s, x) => s + x.strays, 0)
    }
    for (const node of result.nodes) {
      if (node.logLines > 0) problems.push(`${name}: gateway node ${node.id} logged ${node.logLines} line(s) at warn or above; last: ${tail(nodes.find((n) => n.id === node.id)?.log ?? '', 3).slice(0, 600)}`)
      const dropped = Object.entries(node.metricsAfter).filter(([k, v]) => (k.startsWith('gatehouse_dropped_actions_total') || k.startsWith('gatehouse_broker_errors_total')) && v > 0)
      if (dropped.length > 0) problems.push(`${name}: node ${node.id}: ${dropped.map(([k, v]) => `${k} ${v}`).join(', ')}`)
    }
    if (Object.keys(clientCloses).length > 0) problems.push(`${name}: client sockets closed while held, by code: ${JSON.stringify(clientCloses)}`)
    if (result.duplicates > 0 || result.outOfOrder > 0 || result.strays > 0) problems.push(`${name}: clients got ${result.duplicates} duplicate broadcasts, ${result.outOfOrder} out of order, ${result.strays} other frames`)

    // the way out: clients drop their sockets (no close frame), every node must report each `close` (after
    // the endpoint's resumeGraceMs) and, in a cluster, release its presence entries in Redis
    say(`${name}: disconnecting`)
    const dropped = performance.now()
    await Promise.all(workers.map((w) => w.call('disconnect', { group })))
    await eventually(linkStats, (links) => links.every((l) => l.closes >= l.opens), 30000, `${name}: a close for every open`).then(() => { result.closesReportedMs = performance.now() - dropped }, async (err: Error) => {
      problems.push(`${err.message}: ${(await linkStats()).map((l) => `${l.node} ${l.closes} closes of ${l.opens} opens`).join(', ')}`)
    })
    if (redis && result.redis) {
      await sleep(500)
      result.redis.keysAfterDisconnect = (await redisMemory(redis)).keys
      // each node keeps a lease and a few bookkeeping keys; presence entries must be gone
      if (result.redis.keysAfterDisconnect > 10 * nodeCount) problems.push(`${name}: ${result.redis.keysAfterDisconnect} keys left in Redis after every client left`)
    }
    result.exits = await Promise.all(nodes.map(async (n) => {
      const t0 = performance.now()
      await stopProcess(n.proc)
      const how = `${n.id}: ${n.proc.signalCode === 'SIGKILL' ? 'killed after 15 s' : `exit ${n.proc.exitCode ?? n.proc.signalCode}`} ${((performance.now() - t0) / 1000).toFixed(1)} s after SIGTERM`
      if (n.proc.exitCode !== 0) problems.push(`${name}: node ${how}`)
      return how
    }))
    for (const [i, node] of result.nodes.entries()) {
      const lines = tail(nodes[i].log, 1e9).split('\n').filter(Boolean).length
      if (lines > node.logLines) problems.push(`${name}: gateway node ${node.id} logged ${lines - node.logLines} line(s) at warn or above after the clients left; last: ${tail(nodes[i].log, 3).slice(0, 600)}`)
      node.logLines = lines
    }
    phaseProblems.push(...problems)
    return result
  } finally {
    await Promise.all(nodes.map((n) => stopProcess(n.proc)))
  }
}

// ---------------------------------------------------------------- the bare ws loop

interface DirectResult {
  clients: number
  opened: number
  broadcasts: Array<{ id: number, expected: number, received: number, completionMs: number, cpuMs: number }>
  completionMedianMs: number
  perClientUs: number
  cpuPerClientUs: number
}

/**
 * The baseline a broadcast's cost per client is held to (issue 15 item 5):
 * the bench's plain ws echo server, whose broadcast is the loop a ws server
 * would write (one `send` per client), holding `clients` sockets of the same
 * client processes; its CPU over each broadcast as for the gateway phases.
 */
async function runDirectPhase (rig: Rig, phaseIndex: number, clients: number): Promise<DirectResult> {
  const { options, workers } = rig
  say(`direct: starting the bare ws echo server for ${clients} clients`)
  const { child: echo, ready } = await forkChild<{ port: number }>('direct echo server', ECHO_SERVER)
  track(echo.process)
  const group = 'direct'
  try {
    const perWorker = shares(clients, workers.length)
    const perLane = Math.max(1, Math.ceil(options.concurrency / workers.length))
    let offset = 0
    const parts = await Promise.all(workers.map((w, wi) => {
      const users = Array.from({ length: perWorker[wi] }, (_, i) => `direct-user-${offset + i}`)
      offset += perWorker[wi]
      const targets: Target[] = [{ url: `ws://127.0.0.1:${ready.port}${PATH}`, localAddress: `127.${phaseIndex + 1}.${wi + 1}.1` }]
      return w.call<{ opened: number, failed: number, errors: string[] }>('connect', { group, targets, users, concurrency: perLane })
    }))
    const opened = parts.reduce((sum, p) => sum + p.opened, 0)
    const failed = parts.reduce((sum, p) => sum + p.failed, 0)
    if (failed > 0) phaseProblems.push(`direct: ${failed} of ${clients} clients could not connect: ${parts.flatMap((p) => p.errors).slice(0, 3).join('; ')}`)
    say(`direct: ${opened} clients open`)
    await sleep(1000)
    const broadcasts: DirectResult['broadcasts'] = []
    for (let b = -1; b < options.broadcasts; b++) {
      const id = (phaseIndex + 1) * 1000 + b + 1
      const waits = workers.map((w) => w.call<{ sockets: number, received: number, lastAt: number }>('waitBroadcast', { group, id, timeoutMs: options.timeoutMs }))
      const cpuBefore = cpuMs([echo.pid])
      const { sentAt } = await echo.call<{ sentAt: number }>('broadcast', { id })
      const got = await Promise.all(waits)
      const run = {
        id,
        expected: got.reduce((sum, g) => sum + g.sockets, 0),
        received: got.reduce((sum, g) => sum + g.received, 0),
        completionMs: Math.max(...got.map((g) => g.lastAt).filter(Number.isFinite)) - sentAt,
        cpuMs: cpuMs([echo.pid]) - cpuBefore
      }
      say(`direct: broadcast ${b < 0 ? '(warm-up)' : `${b + 1}/${options.broadcasts}`}: ${run.received}/${run.expected} clients, all after ${run.completionMs.toFixed(1)} ms, server CPU ${run.cpuMs} ms`)
      if (run.received < run.expected) phaseProblems.push(`direct: broadcast ${id} reached ${run.received} of ${run.expected} clients within ${options.timeoutMs} ms`)
      if (b >= 0) broadcasts.push(run)
      await sleep(500)
    }
    await Promise.all(workers.map((w) => w.call('disconnect', { group })))
    const completionMedianMs = median(broadcasts.map((r) => r.completionMs))
    return {
      clients,
      opened,
      broadcasts,
      completionMedianMs,
      perClientUs: completionMedianMs / opened * 1000,
      cpuPerClientUs: median(broadcasts.map((r) => r.cpuMs)) / opened * 1000
    }
  } finally {
    await echo.stop()
  }
}

// ---------------------------------------------------------------- report

const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0)
const n0 = (v: number): string => Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a'
const ms1 = (v: number): string => Number.isFinite(v) ? v.toFixed(1) : 'n/a'

interface ClusterBenchResult {
  options: Options
  conditions: Record<string, unknown>
  single: PhaseResult
  cluster: PhaseResult
  /** The bare ws loop, when measured (CLUSTER_DIRECT). */
  direct?: DirectResult
  /** Median completion time per client, cluster ÷ single node. */
  perClientRatio: number
  /** Issue 4: ≥ 45,000 authenticated idle clients on 3 processes, every one reached by the broadcast. */
  target: { clients: number, met: boolean, why: string }
  problems: string[]
}

/** Redis traffic a broadcast caused: the median over the runs less the readings' own (INFO replies); a lease renewal in a run's span adds a little. */
function redisNet (p: PhaseResult): string {
  const inBytes = median(p.broadcasts.map((b) => b.redis?.inBytes ?? NaN))
  const outBytes = median(p.broadcasts.map((b) => b.redis?.outBytes ?? NaN))
  const idle = p.redisIdle ?? { inBytes: NaN, outBytes: NaN }
  return `${n0(inBytes - idle.inBytes)} / ${n0(outBytes - idle.outBytes)} (raw ${n0(inBytes)} / ${n0(outBytes)}, readings alone ${n0(idle.inBytes)} / ${n0(idle.outBytes)})`
}

function renderMarkdown (r: ClusterBenchResult): string {
  const s = r.single
  const c = r.cluster
  const perNode = (p: PhaseResult, f: (n: NodeFigures) => string): string => p.nodes.map(f).join(' / ')
  const all = (p: PhaseResult): string => p.broadcasts.every((b) => b.received === b.expected) ? `yes (${p.broadcasts.length} of ${p.broadcasts.length})` : `no: ${p.broadcasts.map((b) => `${b.received}/${b.expected}`).join(', ')}`
  const rows: string[][] = [
    ['', `single node (baseline, no Redis)`, `cluster (${c.nodes.length} nodes + Redis)`],
    ['clients opened (of asked)', `${n0(s.opened)} (of ${n0(s.clients)})`, `${n0(c.opened)} (of ${n0(c.clients)})`],
    ['connections per node (/metrics `gatehouse_connections`)', perNode(s, (n) => n0(n.connections)), perNode(c, (n) => n0(n.connections))],
    ['`open` events at the backend, per node link', perNode(s, (n) => n0(n.opens)), perNode(c, (n) => n0(n.opens))],
    ['RSS per node, no clients (MiB)', perNode(s, (n) => mib(n.rssBeforeBytes)), perNode(c, (n) => mib(n.rssBeforeBytes))],
    ['RSS per node, clients held (MiB)', perNode(s, (n) => mib(n.rssHeldBytes)), perNode(c, (n) => mib(n.rssHeldBytes))],
    ['RSS per node, after the broadcasts (MiB)', perNode(s, (n) => mib(n.rssAfterBytes)), perNode(c, (n) => mib(n.rssAfterBytes))],
    ['RSS growth per client (KiB, held − no clients)', perNode(s, (n) => ((n.rssHeldBytes - n.rssBeforeBytes) / 1024 / n.connections).toFixed(1)), perNode(c, (n) => ((n.rssHeldBytes - n.rssBeforeBytes) / 1024 / n.connections).toFixed(1))],
    ['Redis RSS: empty / clients held / after (MiB)', '–', c.redis ? `${(c.redis.rssBeforeBytes / 2 ** 20).toFixed(1)} / ${(c.redis.rssHeldBytes / 2 ** 20).toFixed(1)} / ${(c.redis.rssAfterBytes / 2 ** 20).toFixed(1)} (used_memory ${(c.redis.usedMemoryHeldBytes / 2 ** 20).toFixed(1)}, ${n0(c.redis.keysHeld)} keys)` : 'n/a'],
    ['handshakes/s while connecting', n0(s.handshakeRate), n0(c.handshakeRate)],
    ['time to connect every client (s)', (s.connectMs / 1000).toFixed(1), (c.connectMs / 1000).toFixed(1)],
    ['broadcast completion, median / max (ms)', `${ms1(s.completionMedianMs)} / ${ms1(s.completionMaxMs)}`, `${ms1(c.completionMedianMs)} / ${ms1(c.completionMaxMs)}`],
    ['broadcast completion, each run (ms; sending node)', s.broadcasts.map((b) => ms1(b.completionMs)).join(', '), c.broadcasts.map((b) => `${ms1(b.completionMs)} (${b.via})`).join(', ')],
    ['all clients of the sending node / of the other nodes (via Redis) reached, median (ms)', ms1(median(s.broadcasts.map((b) => b.byNodeMs[0]))) + ' / –',
      `${ms1(median(c.broadcasts.map((b) => b.byNodeMs[c.nodes.findIndex((n) => n.id === b.via)])))} / ${ms1(median(c.broadcasts.map((b) => Math.max(...b.byNodeMs.filter((_, i) => c.nodes[i].id !== b.via)))))}`],
    ['first client reached, median (ms)', ms1(median(s.broadcasts.map((b) => b.firstMs))), ms1(median(c.broadcasts.map((b) => b.firstMs)))],
    ['completion per client, median (µs)', s.perClientUs.toFixed(2), c.perClientUs.toFixed(2)],
    ['server CPU per broadcast, each run (ms; nodes + backend + Redis)', s.broadcasts.map((b) => ms1(b.cpuMs)).join(', '), c.broadcasts.map((b) => ms1(b.cpuMs)).join(', ')],
    ['server CPU per client reached, median (µs)', s.cpuPerClientUs.toFixed(2), c.cpuPerClientUs.toFixed(2)],
    ['Redis bytes per broadcast, in / out: median of the runs − the INFO readings\' own', '–', c.redis ? redisNet(c) : 'n/a'],
    ['PUBLISH commands per broadcast, median', '–', n0(median(c.broadcasts.map((b) => b.redis?.publishes ?? NaN)))],
    ['every client got every broadcast', all(s), all(c)],
    ['a `close` for every client at the backend after they left (s)', ms1((s.closesReportedMs ?? NaN) / 1000), ms1((c.closesReportedMs ?? NaN) / 1000)],
    ['Redis keys once every client left', '–', n0(c.redis?.keysAfterDisconnect ?? NaN)]
  ]
  const table = [
    `| ${rows[0].join(' | ')} |`,
    `|${rows[0].map(() => '---').join('|')}|`,
    ...rows.slice(1).map((row) => `| ${row.join(' | ')} |`)
  ].join('\n')
  const k = r.conditions
  const o = r.options
  return `# Gatehouse cluster bench (issue 4)

Produced by \`npm run bench:cluster\` (bench/cluster.ts) on ${k.date as string}; the run took ${k.durationSec as number} s.${o.smoke ? ' **Smoke run: tiny load, the figures mean nothing.**' : ''}

**Target** (issue 4): ${o.nodes} gateway processes on this machine hold ≥ ${n0(r.target.clients)} authenticated idle clients and relay a broadcast to all of them: **${r.target.met ? 'met' : 'not met'}** (${r.target.why}).

**Broadcast completion per client, cluster ÷ single node: ${r.perClientRatio.toFixed(2)}** (median completion ÷ clients: ${c.perClientUs.toFixed(2)} µs over ${n0(c.opened)} clients on ${c.nodes.length} nodes vs ${s.perClientUs.toFixed(2)} µs over ${n0(s.opened)} clients on one node; below 1 means the cluster spreads the fan-out better than one process does).

${table}
${r.direct ? `
**Against the bare ws loop** (issue 15 item 5; the bench's plain ws echo server sending one message to each of its ${n0(r.direct.opened)} clients in a loop, same client processes, same run): server CPU per client reached ${r.direct.cpuPerClientUs.toFixed(2)} µs (each run: ${r.direct.broadcasts.map((b) => ms1(b.cpuMs)).join(', ')} ms), completion per client ${r.direct.perClientUs.toFixed(2)} µs. Per-client CPU, single node ÷ bare loop: **${(s.cpuPerClientUs / r.direct.cpuPerClientUs).toFixed(2)}×**; cluster ÷ bare loop: **${(c.cpuPerClientUs / r.direct.cpuPerClientUs).toFixed(2)}×**. Completion per client, cluster ÷ bare loop: ${(c.perClientUs / r.direct.perClientUs).toFixed(2)}×. CPU is CPU time on a CPU from /proc (every thread's schedstat, in ns) of every server process, from just before the send until the last client had it.
` : ''}
What was measured: on ${k.nproc as number} CPUs (${k.cpu as string}), ${k.memoryGiB as number} GiB RAM, ${k.kernel as string}, Node ${k.node as string}, ws ${k.ws as string}, ${k.redis as string}, gatehouse ${k.gatehouse as string}, open files per process ${k.openFiles as string}; everything on loopback on this one machine, sharing its CPUs (load average ${(k.loadAverageBefore as number[]).map((v) => v.toFixed(2)).join(' ')} before, ${(k.loadAverageAfter as number[]).map((v) => v.toFixed(2)).join(' ')} after). Each gateway node is its own process started with the CLI (\`node dist/src/cli.js --config FILE\`, its own \`server.nodeId\` and port, log level warn, rate limit and \`maxConnections\` raised out of the way, heartbeat pings off for the run); the cluster's nodes share a \`redis-server\` started for the run (\`--save '' --appendonly no\`, \`cluster.name\` bench). All nodes dial one backend process (a plain \`ws\` server) that counts \`open\` events per node link; the clients come from ${o.workers} client processes (a process may hold at most ~20,000 open files), each holding its share of the sockets round-robin over the nodes, each socket with its own HS256 JWT (a distinct user), with ${o.concurrency} handshakes in flight in all, every (client process, node) pair bound to its own 127.x.y.z source address so ephemeral ports never run short. Handshakes/s = clients ÷ the slowest client process's connect time (tokens signed before the clock starts). Once the backend had counted every \`open\`, and 2 s later, connections were read from each node's /metrics and RSS from /proc/PID/status (VmRSS; no GC forced: the CLI processes have no control channel). Then one unmeasured warm-up broadcast and ${o.broadcasts} measured ones, 0.5 s apart, each ONE \`{"action":"send","all":true,"data":{...}}\` written by the backend down one node's link (rotating over the nodes; that node delivers locally and publishes to the others over Redis pub/sub); completion = the last client's receipt − the backend's send time (wall clock in µs, same machine), counted only when every client got it; median and max over the runs. The baseline is the same on ONE node alone (no Redis) with ${n0(o.singleClients)} clients, measured first in the same run; the ratio compares completion time per client, since the clients and the CPUs doing the fan-out differ. Finally the clients drop their sockets without a close frame: every node must report a \`close\` for each (after the endpoint's default 5 s \`resumeGraceMs\`), release its presence entries in Redis, and exit 0 on SIGTERM.
${r.problems.length > 0 ? `\nProblems seen:\n\n${r.problems.map((p) => `- ${p.replace(/\n/g, ' ')}`).join('\n')}\n` : '\nNo problems seen: no failed handshakes, no client socket closed, no duplicate or lost broadcast, nothing logged at warn or above, no dropped actions or broker errors on /metrics, every `close` reported, Redis presence emptied, every node exited 0 on SIGTERM.\n'}
Raw figures (every node's selected /metrics, every broadcast): cluster-results.json.
`
}

// ---------------------------------------------------------------- main

async function main (): Promise<void> {
  const options = optionsFromEnv()
  const startedAt = Date.now()
  const loadBefore = os.loadavg()
  say(`${options.nodes} nodes × ${options.clients} clients; baseline 1 node × ${options.singleClients}; ${options.broadcasts} broadcasts each; ${options.workers} client processes${options.smoke ? ' (smoke)' : ''}`)
  say(`knobs: ${KNOBS.replace(/\n/g, ' ')}`)
  const biggestShare = Math.ceil(Math.max(options.clients, options.singleClients) / options.workers)
  if (Math.ceil(options.clients / options.nodes) > 19000) say(`warning: ${Math.ceil(options.clients / options.nodes)} clients per node is past what a gateway process may hold under a 20,000 open-files limit`)
  if (biggestShare > 18000) throw new Error(`${biggestShare} sockets per client process is too close to the 20,000 open files a process may hold: raise CLUSTER_WORKERS`)
  const dir = mkdtempSync(join(os.tmpdir(), 'gatehouse-cluster-bench-'))
  let keepDir = false
  const children: Child[] = []
  let redis: RedisServer | undefined
  try {
    const { child: backend, ready } = await forkChild<{ port: number }>('broadcast backend', BACKEND)
    children.push(backend)
    track(backend.process)
    const workers = await Promise.all(Array.from({ length: options.workers }, async (_, i) => {
      const { child } = await forkChild(`client process ${i + 1}`, WORKER, { quiet: false })
      track(child.process)
      children.push(child)
      return child
    }))
    const rig: Rig = { options, dir, backend, backendPort: ready.port, workers }

    const direct = options.direct ? await runDirectPhase(rig, 2, options.singleClients) : undefined
    const single = await runPhase(rig, 'single', 0, 1, options.singleClients, undefined)
    say('cluster: starting redis-server')
    redis = await startRedis(options.redisServer, dir)
    const cluster = await runPhase(rig, 'cluster', 1, options.nodes, options.clients, redis)

    const reachedAll = cluster.broadcasts.length > 0 && cluster.broadcasts.every((b) => b.received === b.expected && b.expected >= options.clients)
    const target = options.smoke ? 45000 : options.clients
    const met = options.nodes === 3 && cluster.opened >= 45000 && cluster.nodes.reduce((s, n) => s + n.connections, 0) >= 45000 && reachedAll
    const result: ClusterBenchResult = {
      options: { ...options, out: relative(REPO, options.out) || '.' },
      conditions: {
        ...machineConditions(startedAt),
        ioredis: packageVersion('ioredis'),
        redis: (spawnSync(options.redisServer, ['--version'], { encoding: 'utf8' }).stdout.match(/v=(\S+)/)?.[0] ?? 'unknown').replace('v=', 'redis-server '),
        loadAverageBefore: loadBefore,
        loadAverageAfter: os.loadavg(),
        durationSec: Math.round((Date.now() - startedAt) / 1000)
      },
      single,
      cluster,
      direct,
      perClientRatio: cluster.perClientUs / single.perClientUs,
      target: {
        clients: target,
        met,
        why: `${n0(cluster.opened)} clients open on ${cluster.nodes.length} nodes (${cluster.nodes.map((n) => n0(n.connections)).join(' / ')} on /metrics), ` +
          (reachedAll ? `every one reached by all ${cluster.broadcasts.length} broadcasts` : 'not every client reached by every broadcast')
      },
      problems: phaseProblems
    }
    mkdirSync(options.out, { recursive: true })
    writeFileSync(join(options.out, 'cluster-results.json'), `${JSON.stringify(result, null, 2)}\n`)
    writeFileSync(join(options.out, 'cluster-results.md'), renderMarkdown(result))
    process.stdout.write(`${renderMarkdown(result)}\nwrote ${join(options.out, 'cluster-results.md')} and cluster-results.json\n`)
    if (!met && !options.smoke) process.exitCode = 1
  } catch (err) {
    keepDir = true
    say(`failed: ${(err as Error).stack ?? String(err)}`)
    say(`gateway and redis logs kept in ${dir}`)
    process.exitCode = 1
  } finally {
    redis?.client.disconnect()
    if (redis) await stopProcess(redis.proc, 5000)
    await Promise.all(children.map((c) => c.stop()))
    if (!keepDir) rmSync(dir, { recursive: true, force: true })
  }
}

await main()
process.exit()
