/**
 * The service the chaos test kills: an SDK backend with acks that reports
 * everything it is handed on stdout, one line each, before its handler
 * returns (and so before the SDK may ack it). Pipe writes are synchronous
 * on Linux, so a line is in the parent's pipe even if SIGKILL follows at
 * once. Run as `node chaos-backend.js` with CHAOS_PORT and CHAOS_TOKEN.
 *
 * Lines: `ready`, `sync <seq>`, `open <user>`, `close <user> <code>`,
 * `m <user> <n> <seq>` for a message `{"n": n}`.
 */
import { writeSync } from 'node:fs'
import { GatehouseBackend } from '../../src/sdk/index.js'

const report = (line: string): void => { writeSync(1, `${line}\n`) }
const quiet = { debug () {}, info () {}, warn () {}, error () {} }

const backend = new GatehouseBackend({ token: process.env.CHAOS_TOKEN, logger: quiet }, {
  onOpen: (user) => report(`open ${user}`),
  onClose: (user, code) => report(`close ${user} ${code}`),
  onMessage: (user, data, { seq }) => report(`m ${user} ${(data as { n?: unknown } | null)?.n} ${seq}`)
})
backend.on('synced', ({ seq }) => report(`sync ${seq}`))
await backend.listen({ port: Number(process.env.CHAOS_PORT) })
report('ready')
