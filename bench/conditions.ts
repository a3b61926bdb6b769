/** What a bench result was measured on: machine, runtime, package versions, source revision. */
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import os from 'node:os'

export function packageVersion (name: string): string {
  try {
    return (createRequire(import.meta.url)(`${name}/package.json`) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

export function sourceRevision (): string {
  const cwd = new URL('../../', import.meta.url)
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8' })
  // a build outside the checkout (git archive HEAD) says which commit it is
  if (head.status !== 0) return process.env.BENCH_REVISION ? `commit ${process.env.BENCH_REVISION}` : 'unknown revision'
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src', 'routes', 'protocol'], { cwd, encoding: 'utf8' }).stdout.trim()
  return `commit ${head.stdout.trim()}${dirty ? ' plus uncommitted changes in src/, routes/ or protocol/' : ''}`
}

export interface MachineConditions {
  date: string
  host: string
  nproc: number
  cpu: string
  memoryGiB: number
  node: string
  kernel: string
  ws: string
  socketIo: string
  openFiles: string
  /** The gateway's source: commit, and whether src/, routes/ or protocol/ had uncommitted changes. */
  gatehouse: string
}

/** The machine and runtime of a run that began at `startedAt` (ms). */
export function machineConditions (startedAt: number): MachineConditions {
  return {
    date: new Date(startedAt).toISOString(),
    host: os.hostname(),
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    ws: packageVersion('ws'),
    socketIo: packageVersion('socket.io'),
    openFiles: spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim() || 'unknown',
    gatehouse: sourceRevision()
  }
}
