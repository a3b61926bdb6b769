/**
 * Ports for processes that must be told theirs in advance: a redis-server, a
 * backend restarted on the same port, a CLI gateway. Anything that can listen
 * on port 0 itself and report its port should do that instead.
 *
 * A port from listen(0)-then-close is in the kernel's ephemeral range, where
 * any parallel test job's listen(0) or outgoing connection may take it before
 * the process binds it. These come from below that range (Linux's is
 * 32768-60999), are checked bindable, and are never handed out twice in one
 * process. Two processes may still pick the same one at the same moment:
 * start the process with `onFreePort`, which tries another port on EADDRINUSE.
 */
import { createServer } from 'node:net'

const LOW = 20000
const HIGH = 32000
/** Every port this process handed out, so two callers in it never share one. */
const handedOut = new Set<number>()

async function bindable (port: number): Promise<boolean> {
  const server = createServer()
  const bound = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => resolve(true))
  })
  if (bound) await new Promise((resolve) => server.close(resolve))
  return bound
}

/** A loopback port that no other caller in this process got, and that was free a moment ago. */
export async function freePort (): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW))
    if (handedOut.has(port)) continue
    handedOut.add(port)
    if (await bindable(port)) return port
  }
  throw new Error(`no free port found in ${LOW}-${HIGH}`)
}

/** Whether an error (or the output it carries) says the port was taken. */
export function addressInUse (err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown, message?: unknown }
  return code === 'EADDRINUSE' || /EADDRINUSE|Address already in use/.test(String(message ?? err))
}

/** Runs `start` on a free port; when another process took that port first (EADDRINUSE), on a new one. */
export async function onFreePort<T> (start: (port: number) => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    try {
      return await start(port)
    } catch (err) {
      if (attempt >= attempts || !addressInUse(err)) throw err
    }
  }
}
