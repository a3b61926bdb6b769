/**
 * (f) The reconnect storm (issue 15, item 3): N clients connected; the
 * server goes away and every client reconnects at once with the token it
 * had. Two ways to lose them:
 * - restart: the server process gets SIGTERM (gatehouse drains: 1001) and is
 *   started again on the same port; the clock starts when it is ready
 *   (listening; for gatehouse, its backend link up);
 * - drop: the network drops every client while the server stays up (the
 *   case the gateway's verified-token cache can serve: it lives in the
 *   process, so a restart starts it empty).
 * Back is the last client's open − that start; for gatehouse also the moment
 * the backend has counted every `open`. Sides: the bare ws echo server
 * (direct), gatehouse, and gatehouse with auth.verifyCacheSize 0; with the
 * gatehouse-b contender (BENCH_GATEHOUSE_B) that other build instead of the
 * no-cache side, so an A/B of a change runs in the same storms. Fresh
 * processes for every run, sides interleaved.
 */
import { createServer } from 'node:net'
import { performance } from 'node:perf_hooks'
import { ECHO_BACKEND, ECHO_SERVER, GATEWAY, NODE_FLAGS, gatewayConfig } from './contenders.js'
import { LINK_PATH, PATH } from './endpoints.js'
import { forkChild, type Child } from './ipc.js'
import { split, type LoadPool } from './load/pool.js'
import type { BenchOptions } from './options.js'
import { median } from './stats.js'

export const STORM_MODES = ['restart', 'drop'] as const
export type StormMode = typeof STORM_MODES[number]
export const STORM_SIDES = ['direct', 'gatehouse', 'gatehouse, no cache', 'gatehouse-b'] as const
export type StormSide = typeof STORM_SIDES[number]

export interface StormRun {
  /** Last client's open − the start, ms. */
  backMs: number
  /** gatehouse: when the backend had every `open` − the start, ms. */
  opensMs?: number
  /** restart: SIGTERM until the new process was ready, ms. */
  restartMs?: number
  /** Connects that failed (port not open, queue full, 503) and were tried again. */
  retries: number
  /** How the clients' sockets were closed, by code. */
  closeCodes: Record<number, number>
}
export interface StormFigure { backMs: number, opensMs?: number, runs: StormRun[] }
/** By mode, client count, side. */
export type StormFigures = Partial<Record<StormMode, Record<number, Partial<Record<StormSide, StormFigure>>>>>

interface StormServer {
  url: string
  /** SIGTERM, wait for the exit, start again on the same port; resolves when ready. */
  restart (): Promise<void>
  /** `open` and `close` events the backend has counted (gatehouse), or clients the echo server holds (direct). */
  stats (): Promise<{ opens?: number, closes?: number, clients?: number }>
  stop (): Promise<void>
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const wallNow = (): number => performance.timeOrigin + performance.now()

/** A free loopback port below the ephemeral range, so no client's own port can take it while the server is down. */
async function freePort (): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 10000)
    const free = await new Promise<boolean>((resolve) => {
      const probe = createServer()
      probe.once('error', () => resolve(false))
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
    })
    if (free) return port
  }
}

async function killAndWait (child: Child): Promise<void> {
  const gone = new Promise<void>((resolve) => child.process.once('exit', () => resolve()))
  child.process.kill('SIGTERM')
  await gone
}

async function startSide (side: StormSide, clients: number, options: BenchOptions): Promise<StormServer> {
  const { cpuProfDir, gatehouseB: buildB } = options
  const port = await freePort()
  if (side === 'direct') {
    const start = async (): Promise<Child> => (await forkChild('storm echo server', ECHO_SERVER, { execArgv: NODE_FLAGS, args: [String(port)] })).child
    let echo = await start()
    return {
      url: `ws://127.0.0.1:${port}${PATH}`,
      restart: async () => {
        await killAndWait(echo)
        echo = await start()
      },
      stats: async () => await echo.call('stats'),
      stop: async () => await echo.stop()
    }
  }
  const { child: backend, ready } = await forkChild<{ port: number }>('storm echo backend', ECHO_BACKEND, { execArgv: NODE_FLAGS })
  const base = gatewayConfig(`ws://127.0.0.1:${ready.port}${LINK_PATH}`)
  const config = JSON.stringify({
    ...base,
    server: { ...(base.server as object), port },
    // sized to the clients, as docs/configuration.md asks: a storm larger than the cache would miss on every token
    auth: { ...(base.auth as object), verifyCacheSize: side === 'gatehouse, no cache' ? 0 : Math.max(10000, clients) }
  })
  const start = async (): Promise<Child> => {
    const args = side === 'gatehouse-b' ? [config, buildB as string] : [config]
    const flags = cpuProfDir ? [...NODE_FLAGS, '--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : NODE_FLAGS
    const { child } = await forkChild(`storm ${side}`, GATEWAY, { execArgv: side === 'gatehouse-b' ? [...flags, ...options.gatehouseBFlags] : flags, args })
    await child.call('ready')
    return child
  }
  let gateway: Child
  try {
    gateway = await start()
  } catch (err) {
    await backend.stop()
    throw err
  }
  return {
    url: `ws://127.0.0.1:${port}${PATH}`,
    restart: async () => {
      await killAndWait(gateway)
      gateway = await start()
    },
    stats: async () => await backend.call('stats'),
    stop: async () => {
      await gateway.stop(10000)
      await backend.stop()
    }
  }
}

/** Polls `ok` every 5 ms until it holds (resolving with the wall-clock time it was seen) or `timeoutMs` passes. */
async function when (ok: () => Promise<boolean>, timeoutMs: number): Promise<number | undefined> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (await ok()) return wallNow()
    await sleep(5)
  }
  return undefined
}

async function stormOnce (mode: StormMode, side: StormSide, clients: number, pool: LoadPool, problems: string[], options: BenchOptions): Promise<StormRun | undefined> {
  const server = await startSide(side, clients, options)
  const group = 'storm'
  const what = `storm (${mode}) ${side}, ${clients} clients`
  try {
    const users = split(Array.from({ length: clients }, (_, i) => `storm-${i}`), pool.size)
    const connected = await pool.each<{ failed: number, errors: string[] }>('stormConnect', (i) => ({ group, url: server.url, users: users[i], concurrency: Math.ceil(256 / pool.size) }))
    const failed = connected.reduce((sum, r) => sum + r.failed, 0)
    if (failed > 0) {
      problems.push(`${what}: ${failed} clients could not connect before the storm (${connected.flatMap((r) => r.errors).join('; ')})`)
      return undefined
    }
    const before = await server.stats()
    const closed = pool.each<{ stillOpen: number, closeCodes: Record<number, number> }>('stormClosed', () => ({ group, timeoutMs: 30000 }))
    let restartMs: number | undefined
    if (mode === 'restart') {
      const t0 = performance.now()
      await server.restart()
      restartMs = performance.now() - t0
    } else {
      await pool.each('stormDrop', () => ({ group }))
    }
    const closes = await closed
    const closeCodes: Record<number, number> = {}
    for (const part of closes) for (const [code, n] of Object.entries(part.closeCodes)) closeCodes[Number(code)] = (closeCodes[Number(code)] ?? 0) + n
    if (closes.some((c) => c.stillOpen > 0)) problems.push(`${what}: clients still open 30 s after the server went away`)
    if (mode === 'drop') {
      // the server must have let go of every client first, or the reconnects would meet their own old sessions
      const gone = await when(async () => {
        const s = await server.stats()
        return s.clients !== undefined ? s.clients === 0 : (s.closes ?? 0) - (before.closes ?? 0) >= clients
      }, 30000)
      if (gone === undefined) problems.push(`${what}: the server still held clients 30 s after they were dropped`)
    }
    const opensBefore = (await server.stats()).opens
    const start = wallNow()
    const opens = opensBefore === undefined
      ? Promise.resolve(undefined)
      : when(async () => ((await server.stats()).opens ?? 0) - opensBefore >= clients, 60000)
    const back = await pool.each<{ back: number, lastOpenAt: number, retries: number, refused: Record<string, number>, errors: string[] }>('stormReconnect', () => ({ group, deadlineMs: 60000 }))
    const opensAt = await opens
    const backCount = back.reduce((sum, r) => sum + r.back, 0)
    const refused = back.flatMap((r) => Object.entries(r.refused).map(([status, n]) => `${n} × HTTP ${status}`))
    if (refused.length > 0) problems.push(`${what}: clients refused on reconnect (${refused.join(', ')})`)
    if (backCount < clients) problems.push(`${what}: only ${backCount} of ${clients} clients came back in 60 s (${back.flatMap((r) => r.errors).join('; ')})`)
    if (opensBefore !== undefined && opensAt === undefined) problems.push(`${what}: the backend did not see every client's open within 60 s`)
    return {
      backMs: Math.max(...back.map((r) => r.lastOpenAt)) - start,
      opensMs: opensAt === undefined ? undefined : opensAt - start,
      restartMs,
      retries: back.reduce((sum, r) => sum + r.retries, 0),
      closeCodes
    }
  } finally {
    await pool.each('stormDisconnect', () => ({ group }))
    await server.stop()
  }
}

export async function storms (options: BenchOptions, pool: LoadPool, contenders: readonly string[], problems: string[], say: (line: string) => void): Promise<StormFigures> {
  const ab = contenders.includes('gatehouse-b')
  const sides = STORM_SIDES.filter((side) => side === 'gatehouse-b' ? ab : side === 'gatehouse, no cache' ? !ab && contenders.includes('gatehouse') : contenders.includes(side))
  const figures: StormFigures = {}
  for (const mode of STORM_MODES) {
    const byCount: Record<number, Partial<Record<StormSide, StormFigure>>> = {}
    figures[mode] = byCount
    for (const clients of options.stormClients) {
      const runs = new Map<StormSide, StormRun[]>(sides.map((s) => [s, []]))
      for (let run = 0; run < options.runs; run++) {
        for (let k = 0; k < sides.length; k++) {
          const side = sides[(k + run) % sides.length]
          const r = await stormOnce(mode, side, clients, pool, problems, options)
          if (r === undefined) continue
          runs.get(side)?.push(r)
          say(`(f) storm (${mode}), ${clients} clients, run ${run + 1}/${options.runs}, ${side}: all back in ${r.backMs.toFixed(0)} ms${r.opensMs === undefined ? '' : `, every open at the backend in ${r.opensMs.toFixed(0)} ms`}${r.restartMs === undefined ? '' : ` (restart took ${r.restartMs.toFixed(0)} ms)`}, ${r.retries} retried connects`)
        }
      }
      byCount[clients] = Object.fromEntries([...runs].filter(([, list]) => list.length > 0).map(([side, list]) => {
        const opens = list.flatMap((r) => r.opensMs === undefined ? [] : [r.opensMs])
        return [side, { backMs: median(list.map((r) => r.backMs)), opensMs: opens.length > 0 ? median(opens) : undefined, runs: list }]
      }))
    }
  }
  return figures
}

/** The storm's own table: time until all are back per side, and direct's time ÷ gatehouse's (≥ 0.8 is the issue-15 target). */
export function renderStorm (figures: StormFigures | undefined): string[] {
  if (figures === undefined) return []
  const ab = STORM_MODES.some((mode) => Object.values(figures[mode] ?? {}).some((sides) => sides['gatehouse-b'] !== undefined))
  const other: StormSide = ab ? 'gatehouse-b' : 'gatehouse, no cache'
  const lines = [`| storm | clients | direct ms | gatehouse ms (all open at backend) | ${other} ms (all open at backend) | direct ÷ gatehouse | direct ÷ ${other} |`, '|---|---|---|---|---|---|---|']
  const ms = (f: StormFigure | undefined): string => f === undefined ? 'n/a' : `${f.backMs.toFixed(0)}${f.opensMs === undefined ? '' : ` (${f.opensMs.toFixed(0)})`}`
  const ratio = (direct: StormFigure | undefined, gh: StormFigure | undefined): string => direct === undefined || gh === undefined ? 'n/a' : `${(direct.backMs / (gh.opensMs ?? gh.backMs)).toFixed(2)}×`
  for (const mode of STORM_MODES) {
    for (const [clients, sides] of Object.entries(figures[mode] ?? {})) {
      lines.push(`| ${mode} | ${clients} | ${ms(sides.direct)} | ${ms(sides.gatehouse)} | ${ms(sides[other])} | ${ratio(sides.direct, sides.gatehouse)} | ${ratio(sides.direct, sides[other])} |`)
    }
  }
  return lines
}
