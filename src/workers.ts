/**
 * The primary of `gatehouse --workers N`: forks N workers (node:cluster, so
 * they share the listening port), restarts one that dies, and on SIGTERM or
 * SIGINT passes the signal on and exits once all have drained. Workers that
 * keep dying (a port already taken, say) are given up on: the primary stops
 * the rest and exits 1, so a supervisor sees the failure.
 */
import cluster, { type Worker } from 'node:cluster'
import { pino } from 'pino'

/** A worker that keeps dying is restarted no faster than this. */
const RESTART_DELAY_MS = 1000
/** More unexpected worker exits than this within `CRASH_WINDOW_MS` and the primary gives up. */
const CRASH_LIMIT = 5
const CRASH_WINDOW_MS = 60_000

export function superviseWorkers (count: number, stopTimeoutMs: number): void {
  const log = pino({ base: { pid: process.pid, role: 'primary' } })
  let stopping = false
  let failed = false
  let crashes: number[] = []

  const fork = (n: number): void => {
    const worker: Worker = cluster.fork({ GATEHOUSE_WORKER: String(n) })
    worker.on('exit', (code, signal) => {
      if (code !== 0) failed = true
      if (stopping) {
        if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(failed ? 1 : 0)
        return
      }
      const now = Date.now()
      crashes = [...crashes.filter((at) => now - at < CRASH_WINDOW_MS), now]
      if (crashes.length > CRASH_LIMIT) {
        log.error({ worker: n, code, signal, exits: crashes.length, windowMs: CRASH_WINDOW_MS }, 'workers keep exiting; giving up (see their errors above)')
        stop('SIGTERM', true)
        return
      }
      log.error({ worker: n, code, signal }, 'worker exited; starting it again')
      // not unref'd: while every worker is down, this timer is what keeps the primary alive
      setTimeout(() => { if (!stopping) fork(n) }, RESTART_DELAY_MS)
    })
  }

  /** `givingUp`: the primary exits 1 whatever the workers' exit codes. */
  const stop = (signal: NodeJS.Signals, givingUp = false): void => {
    if (stopping) return
    stopping = true
    failed = givingUp
    // the primary may also run out of things to wait for (every worker already gone): it still fails
    if (givingUp) process.exitCode = 1
    log.info({ signal, workers: count }, 'stopping workers')
    const workers = Object.values(cluster.workers ?? {})
    if (workers.length === 0) process.exit(failed ? 1 : 0)
    for (const worker of workers) worker?.process.kill(signal)
    setTimeout(() => {
      log.error('workers did not stop in time; exiting')
      process.exit(1)
    }, stopTimeoutMs).unref()
  }

  log.info({ workers: count }, 'starting workers')
  for (let n = 1; n <= count; n++) fork(n)
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
}
