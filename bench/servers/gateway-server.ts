/**
 * The gatehouse contender: the gateway as built (dist/src/index.js
 * createGateway), configured by the orchestrator through argv, logs off.
 * A second argument names another build's index.js (the gatehouse-b contender).
 */
import { Writable } from 'node:stream'
import { pathToFileURL } from 'node:url'
import type { createGateway as CreateGateway } from '../../src/index.js'
import { serveIpc } from '../ipc.js'
import { serverHandlers } from './common.js'

const config = JSON.parse(process.argv[2] ?? '{}') as Record<string, unknown>
const entry = process.argv[3] ? pathToFileURL(process.argv[3]).href : '../../src/index.js'
const { createGateway } = await import(entry) as { createGateway: typeof CreateGateway }
const logStream = new Writable({ write (_chunk, _enc, done) { done() } })
const app = await createGateway(config, { logStream })
// the port from the config: the reconnect storm restarts the gateway where its clients were
await app.listen({ host: '127.0.0.1', port: (config.server as { port?: number } | undefined)?.port ?? 0 })
// SIGTERM drains as the CLI does (docs/operations.md): clients get 1001
process.once('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
const port = (app.server.address() as { port: number }).port

serveIpc({
  ...serverHandlers(async () => { await app.close() }),
  ready: async () => {
    // readiness is every backend link up (docs/operations.md)
    for (let i = 0; i < 1000; i++) {
      const res = await app.inject({ method: 'GET', url: '/readyz' })
      if (res.statusCode === 200) return { ready: true }
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    throw new Error('backend link did not come up within 10 s')
  }
}, { port })
