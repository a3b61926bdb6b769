/**
 * server.backlog (docs/configuration.md): the gateway's listening socket gets
 * the configured accept queue, not Node's 511, which a reconnect storm of
 * thousands overflows (each dropped SYN costs its client a 1 s retransmit).
 * Read back from the kernel with `ss`: a listening socket's Send-Q is its backlog.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { parseConfig, ConfigError } from '../src/index.js'
import { startGateway, testConfig } from './helpers/gateway.js'

const base = { auth: { secret: 's' }, endpoints: [{ name: 'lobby', path: '/lobby', backend: { url: 'ws://127.0.0.1:4001' } }] }

/** The kernel caps every backlog at net.core.somaxconn. */
const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim())

/** The accept queue of the socket listening on 127.0.0.1:port, as the kernel has it. */
function listenBacklog (port: number): number {
  const out = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' })
  const line = out.split('\n').find((l) => l.includes(`127.0.0.1:${port}`))
  if (line === undefined) throw new Error(`no listening socket on port ${port} in: ${out}`)
  return Number(line.trim().split(/\s+/)[2])
}

function problemsOf (config: Record<string, unknown>): string {
  try {
    parseConfig(config, {})
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.join('\n')
    throw err
  }
  return ''
}

t.test('the backlog defaults to 4096, and a bad one is named', async (t) => {
  t.equal(parseConfig(base, {}).server.backlog, 4096, 'defaults to 4096')
  t.match(problemsOf({ ...base, server: { backlog: 0 } }), /server\.backlog/, 'a backlog of 0 is refused, naming the field')
  t.match(problemsOf({ ...base, server: { backlog: 'lots' } }), /server\.backlog/, 'a backlog that is not a number is refused, naming the field')
  t.match(problemsOf({ ...base, server: { backlog: 1.5 } }), /server\.backlog/, 'a fractional backlog is refused, naming the field')
})

for (const backlog of [undefined, 1000]) {
  t.test(`the listening socket has ${backlog === undefined ? 'the default' : 'the configured'} accept queue`, async (t) => {
    const config = testConfig([{ name: 'lobby', path: '/lobby', backend: 'ws://127.0.0.1:1/link' }])
    if (backlog !== undefined) config.server = { ...(config.server as object), backlog }
    const gateway = await startGateway(t, config)
    const want = Math.min(backlog ?? 4096, somaxconn)
    t.equal(listenBacklog(gateway.port), want, `the kernel holds ${want} connections waiting for accept (configured ${backlog ?? 'by default'}, somaxconn ${somaxconn})`)
  })
}
