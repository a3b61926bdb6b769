/**
 * The service the chaos test kills: an SDK backend with acks that reports
 * everything it is handed on stdout, one line each, before its handler
 * returns (and so before the SDK may ack it). The write is synchronous, so
 * a line is in the parent's pipe even if SIGKILL follows at once. Run as
 * `node chaos-backend.js` with CHAOS_PORT and CHAOS_TOKEN.
 *
 * Lines: `ready`, `sync <seq>`, `open <user>`, `close <user> <code>`,
 * `m <user> <n> <seq>` for a message `{"n": n}`.
 */
import { writeSync } from 'node:fs'
import { GatehouseBackend } from '../../src/sdk/index.js'

const pauseCell = new Int32Array(new SharedArrayBuffer(4))

/**
 * Writes one line before returning, whatever it takes: stdout is a socket
 * the parent may be slow to read, and a line given up on (EAGAIN) would be a
 * message the SDK acks without the test ever hearing of it.
 */
function report (line: string): void {
  const bytes = Buffer.from(`${line}\n`)
  for (let written = 0; written < bytes.length;) {
    try {
      written += writeSync(1, bytes, written)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err
      Atomics.wait(pauseCell, 0, 0, 1)
    }
  }
}

const quiet = { debug () {}, info () {}, warn () {}, error () {} }

const backend = new GatehouseBackend({ token: process.env.CHAOS_TOKEN, logger: quiet }, {
  onOpen: (user) => report(`open ${user}`),
  onClose: (user, code) => report(`close ${user} ${code}`),
  onMessage: (user, data, { seq }) => report(`m ${user} ${(data as { n?: unknown } | null)?.n} ${seq}`)
})
backend.on('synced', ({ seq }) => report(`sync ${seq}`))
await backend.listen({ port: Number(process.env.CHAOS_PORT) })
report('ready')
