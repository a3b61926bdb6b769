/**
 * A real `redis-server` on a free loopback port, for cluster tests: nothing
 * saved to disk, so a restart comes back empty, as a failed-over or
 * restarted cache would. `.ci/run` installs Debian's redis-server.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { onFreePort } from './ports.js'

export interface TestRedis {
  url: string
  port: number
  /** Stops the server (SIGTERM) and waits for it to exit. */
  stop (): Promise<void>
  /** Starts it again on the same port. */
  start (): Promise<void>
}

export async function redisFor (t: { teardown (fn: () => unknown): void }): Promise<TestRedis> {
  const redis = await onFreePort(async (port) => {
    const server = redisOn(port)
    await server.start()
    return server
  })
  t.teardown(redis.stop)
  return redis
}

/** A server on `port`, not yet started. */
function redisOn (port: number): TestRedis {
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    let output = ''
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        output += chunk.toString()
        if (/Ready to accept connections/.test(output)) resolve()
      }
      proc.stdout?.on('data', onData)
      proc.stderr?.on('data', onData)
      proc.once('error', (err) => reject(new Error(`cannot start redis-server (is it installed? .ci/run installs it): ${err.message}`)))
      proc.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${output}`)))
    })
  }
  const stop = async (): Promise<void> => {
    const proc = child
    child = undefined
    if (!proc || proc.exitCode !== null) return
    proc.kill('SIGTERM')
    await once(proc, 'exit')
  }
  return { url: `redis://127.0.0.1:${port}`, port, stop, start }
}
