/** What one bench run does, from defaults, the smoke preset and BENCH_* environment knobs. */
import { ALL_CONTENDERS, CONTENDERS, type ContenderName } from './contenders.js'

export const WORKLOADS = ['throughput', 'handshake', 'idle', 'broadcast', 'storm'] as const
export type Workload = typeof WORKLOADS[number]

export interface BenchOptions {
  contenders: ContenderName[]
  workloads: Workload[]
  /** (a) clients each keeping one message in flight, one measurement per count. */
  clientCounts: number[]
  /** Runs per throughput/handshake figure; each figure is their median. */
  runs: number
  warmupMs: number
  durationMs: number
  payloadBytes: number
  /** (b) length of one handshake-rate window, and handshakes kept in flight. */
  handshakeMs: number
  handshakeConcurrency: number
  /** (c, d) idle authenticated connections held, ascending. */
  idleCounts: number[]
  /** (e) clients every contender holds while its server sends one message to all of them, once per run. */
  broadcastClients: number
  /** (f) clients in each reconnect storm, one figure per count. */
  stormClients: number[]
  /** Runs of the idle workload (fresh processes each). */
  idleRuns: number
  /** Pause before memory is read. */
  settleMs: number
  /** Load-generator processes (each holds at most ~8,000 sockets). */
  workers: number
  /** What to do when nginx is missing: install it (as root), or leave the contender out. */
  nginx: 'install' | 'optional'
  nginxWorkers: string
  /** When set, the gateway runs with --cpu-prof and writes its profile here. */
  cpuProfDir?: string
  /** Another build's dist/src/index.js, measured as the `gatehouse-b` contender. */
  gatehouseB?: string
  /** BENCH_GATEHOUSE_B_RAW=1: the `gatehouse-b` build runs as `gatehouse-raw` does (raw link, raw echo backend). */
  gatehouseBRaw: boolean
  /** BENCH_GATEHOUSE_B_FLAGS: Node flags for the `gatehouse-b` process only (the same build with a V8 flag, say). */
  gatehouseBFlags: string[]
  /** BENCH_LINK_MASK=0: every gateway contender's link with `backend.mask: false` (docs/configuration.md). */
  linkMask: boolean
  smoke: boolean
}

export const KNOBS = `BENCH_RUNS (5), BENCH_IDLE_RUNS (3), BENCH_CLIENTS (10,100,1000), BENCH_IDLE (1000,15000), BENCH_BROADCAST_CLIENTS (10000),
BENCH_STORM_CLIENTS (1000,15000), BENCH_DURATION_MS (3000), BENCH_WARMUP_MS (1000), BENCH_HANDSHAKE_MS (3000), BENCH_HANDSHAKE_CONCURRENCY (64),
BENCH_WORKERS (auto), BENCH_CONTENDERS (direct,nginx,socketio,gatehouse,gatehouse-raw), BENCH_WORKLOADS (throughput,handshake,idle,broadcast,storm),
BENCH_NGINX_WORKERS (auto), BENCH_GATEHOUSE_B=/other/checkout/dist/src/index.js, BENCH_GATEHOUSE_B_RAW=1, BENCH_GATEHOUSE_B_FLAGS='--node-flag …', BENCH_LINK_MASK=0 (gateway links unmasked), BENCH_NO_INSTALL=1, NGINX=/path/to/nginx, BENCH_CPU_PROF=DIR, BENCH_OUT=DIR, BENCH_SMOKE=1`

export function defaultOptions (): BenchOptions {
  return {
    contenders: [...CONTENDERS],
    workloads: [...WORKLOADS],
    clientCounts: [10, 100, 1000],
    runs: 5,
    warmupMs: 1000,
    durationMs: 3000,
    payloadBytes: 64,
    handshakeMs: 3000,
    handshakeConcurrency: 64,
    idleCounts: [1000, 15000],
    idleRuns: 3,
    broadcastClients: 10000,
    stormClients: [1000, 15000],
    settleMs: 1000,
    workers: 2,
    nginx: 'install',
    nginxWorkers: 'auto',
    gatehouseBRaw: false,
    gatehouseBFlags: [],
    linkMask: true,
    smoke: false
  }
}

/** A few seconds, tiny load: proves every part still works (test/bench-smoke.test.ts). */
export function smokeOptions (): BenchOptions {
  return {
    ...defaultOptions(),
    clientCounts: [10],
    runs: 1,
    warmupMs: 200,
    durationMs: 500,
    handshakeMs: 500,
    handshakeConcurrency: 8,
    idleCounts: [20, 50],
    idleRuns: 1,
    broadcastClients: 50,
    stormClients: [20],
    settleMs: 200,
    workers: 2,
    nginx: 'optional',
    smoke: true
  }
}

function list (value: string | undefined): string[] | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.split(',').map((s) => s.trim()).filter(Boolean)
}

function positive (name: string, value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(value)}`)
  return n
}

function counts (name: string, value: string | undefined): number[] | undefined {
  return list(value)?.map((v) => Math.round(positive(name, v) as number)).sort((a, b) => a - b)
}

function oneOf<T extends string> (name: string, values: string[] | undefined, allowed: readonly T[]): T[] | undefined {
  for (const v of values ?? []) if (!allowed.includes(v as T)) throw new Error(`${name}: ${v} is not one of ${allowed.join(', ')}`)
  return values as T[] | undefined
}

export function optionsFromEnv (env: NodeJS.ProcessEnv = process.env): BenchOptions {
  const base = env.BENCH_SMOKE === '1' ? smokeOptions() : defaultOptions()
  const o: BenchOptions = {
    ...base,
    contenders: oneOf('BENCH_CONTENDERS', list(env.BENCH_CONTENDERS), ALL_CONTENDERS) ?? (env.BENCH_GATEHOUSE_B ? [...base.contenders, 'gatehouse-b'] : base.contenders),
    workloads: oneOf('BENCH_WORKLOADS', list(env.BENCH_WORKLOADS), WORKLOADS) ?? base.workloads,
    clientCounts: counts('BENCH_CLIENTS', env.BENCH_CLIENTS) ?? base.clientCounts,
    runs: positive('BENCH_RUNS', env.BENCH_RUNS) ?? base.runs,
    idleRuns: positive('BENCH_IDLE_RUNS', env.BENCH_IDLE_RUNS) ?? base.idleRuns,
    warmupMs: positive('BENCH_WARMUP_MS', env.BENCH_WARMUP_MS) ?? base.warmupMs,
    durationMs: positive('BENCH_DURATION_MS', env.BENCH_DURATION_MS) ?? base.durationMs,
    handshakeMs: positive('BENCH_HANDSHAKE_MS', env.BENCH_HANDSHAKE_MS) ?? base.handshakeMs,
    handshakeConcurrency: positive('BENCH_HANDSHAKE_CONCURRENCY', env.BENCH_HANDSHAKE_CONCURRENCY) ?? base.handshakeConcurrency,
    idleCounts: counts('BENCH_IDLE', env.BENCH_IDLE) ?? base.idleCounts,
    broadcastClients: Math.round(positive('BENCH_BROADCAST_CLIENTS', env.BENCH_BROADCAST_CLIENTS) ?? base.broadcastClients),
    stormClients: counts('BENCH_STORM_CLIENTS', env.BENCH_STORM_CLIENTS) ?? base.stormClients,
    nginx: env.BENCH_NO_INSTALL === '1' ? 'optional' : base.nginx,
    nginxWorkers: env.BENCH_NGINX_WORKERS ?? base.nginxWorkers,
    cpuProfDir: env.BENCH_CPU_PROF || undefined,
    gatehouseB: env.BENCH_GATEHOUSE_B || undefined,
    gatehouseBRaw: env.BENCH_GATEHOUSE_B_RAW === '1',
    gatehouseBFlags: (env.BENCH_GATEHOUSE_B_FLAGS ?? '').split(/\s+/).filter((flag) => flag !== ''),
    linkMask: env.BENCH_LINK_MASK !== '0'
  }
  if (o.contenders.includes('gatehouse-b') && !o.gatehouseB) throw new Error('the gatehouse-b contender needs BENCH_GATEHOUSE_B=/path/to/dist/src/index.js')
  // the broadcast workload holds every contender's clients at once
  const broadcastSockets = o.workloads.includes('broadcast') ? o.broadcastClients * o.contenders.length : 0
  const largest = Math.max(...o.idleCounts, ...o.clientCounts, broadcastSockets, ...(o.workloads.includes('storm') ? o.stormClients : []))
  // ~8,000 sockets per load-generator process keeps each well under the 20,000 open-file limit
  o.workers = positive('BENCH_WORKERS', env.BENCH_WORKERS) ?? Math.max(base.workers, Math.ceil(largest / 8000))
  return o
}
