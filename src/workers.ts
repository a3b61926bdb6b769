/**
 * The primary of `gatehouse --workers N`: forks N workers (node:cluster, so
 * they share the listening port), restarts one that dies, and on SIGTERM or
 * SIGINT passes the signal on and exits once all have drained.
 */
import cluster, { type Worker } from 'node:cluster'
import { pino } from 'pino'

/** A worker that keeps dying is restarted no faster than this. */
const RESTART_DELAY_MS = 1000

export function superviseWorkers (count: number, stopTimeoutMs: number): void {
  const log = pino({ base: { pid: process.pid, role: 'primary' } })
  let stopping = false
  let failed = false

  const fork = (n: number): void => {
    const worker: Worker = cluster.fork({ GATEHOUSE_WORKER: String(n) })
    worker.on('exit', (code, signal) => {
      if (code !== 0) failed = true
      if (stopping) {
        if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(failed ? 1 : 0)
        return
      }
      log.error({ worker: n, code, signal }, 'worker exited; starting it again')
      setTimeout(() => fork(n), RESTART_DELAY_MS).unref()
    })
  }

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return
    stopping = true
    failed = false
    log.info({ signal, workers: count }, 'stopping workers')
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal)
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
