/** A real gateway app on a free loopback port, its logs captured for assertions. */
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { createGateway } from '../../src/index.js'
import { AUDIENCE, ISSUER, SECRET } from './tokens.js'
import { Inbox } from './waiter.js'

export interface TestGateway {
  app: FastifyInstance
  port: number
  /** ws://127.0.0.1:PORT + path */
  url (path: string): string
  /** Every JSON log line the gateway wrote. */
  logs: string[]
  /** Waits for the next log line whose `msg` matches. */
  logged (msg: RegExp, timeoutMs?: number): Promise<Record<string, unknown>>
  /** GET an HTTP route; status and body. */
  get (path: string): Promise<{ status: number, body: string }>
  /** Current value of a metric (summed over matching label sets). */
  metric (name: string, labels?: Record<string, string>): Promise<number>
}

type Teardown = { teardown (fn: () => unknown): void }

export interface EndpointSpec {
  name: string
  path: string
  backend: string | Record<string, unknown>
  [key: string]: unknown
}

/** Config with test auth (HS256, iss/aud) and quick timings, overridden by `overrides`. */
export function testConfig (endpoints: EndpointSpec[], overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port: 0, shutdownTimeoutMs: 3000 },
    auth: { secret: SECRET, algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE },
    endpoints: endpoints.map(({ backend, ...rest }) => ({
      // tests of dropped clients want their close at once; resume tests opt in
      resumeGraceMs: 0,
      ...rest,
      backend: typeof backend === 'string' ? { url: backend, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } : backend
    })),
    log: { level: 'debug' },
    ...overrides
  }
}

export async function startGateway (t: Teardown, config: Record<string, unknown>): Promise<TestGateway> {
  const logs: string[] = []
  const lines = new Inbox<Record<string, unknown>>()
  const logStream = new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        logs.push(line)
        lines.push(JSON.parse(line))
      }
      done()
    }
  })
  const app = await createGateway(config, { logStream })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port
  const get = async (path: string): Promise<{ status: number, body: string }> => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`)
    return { status: res.status, body: await res.text() }
  }
  return {
    app,
    port,
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    logs,
    logged: (msg, timeoutMs) => lines.next((l) => msg.test(String(l.msg)), timeoutMs, `a log line matching ${msg}`),
    get,
    async metric (name, labels = {}) {
      return metricValue((await get('/metrics')).body, name, labels)
    }
  }
}

/** A metric's value in Prometheus text, summed over the label sets that match `labels`. */
export function metricValue (body: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0
  for (const line of body.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (!match || match[1] !== name) continue
    const set = match[2] ?? ''
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) total += Number(match[3])
  }
  return total
}
