#!/usr/bin/env node
/**
 * `gatehouse --config gateway.config.json [--workers N]`: start the gateway;
 * SIGTERM or SIGINT drains it and exits 0. With N > 1 workers (node:cluster)
 * share the port, each a node of the Redis cluster. A bad config prints every
 * problem, by field, and exits 1 without a stack trace.
 */
import cluster from 'node:cluster'
import { parseArgs } from 'node:util'
import { loadConfigFile, workersProblem, ConfigError } from './config/load.js'
import type { GatewayConfig } from './config/schema.js'
import { createGateway } from './gateway.js'
import { superviseWorkers } from './workers.js'

const USAGE = `usage: gatehouse [--config FILE] [--workers N]

  -c, --config FILE   gateway config (default: $GATEHOUSE_CONFIG, else ./gateway.config.json)
  -w, --workers N     worker processes on one port (default: server.workers); N > 1 needs cluster.redis
  -h, --help          this text`

async function main (): Promise<void> {
  let args
  try {
    args = parseArgs({
      options: { config: { type: 'string', short: 'c' }, workers: { type: 'string', short: 'w' }, help: { type: 'boolean', short: 'h' } }
    }).values
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`)
  }
  if (args.help) {
    console.log(USAGE)
    return
  }
  const path = args.config ?? process.env.GATEHOUSE_CONFIG ?? 'gateway.config.json'
  let config
  try {
    config = loadConfigFile(path)
  } catch (err) {
    if (err instanceof ConfigError) fail(`${path}: invalid configuration:\n  ${err.problems.join('\n  ')}`)
    throw err
  }
  const workers = args.workers === undefined ? config.server.workers : Number(args.workers)
  if (!Number.isInteger(workers) || workers < 1) fail(`--workers: must be an integer >= 1, not "${args.workers}"`)
  const problem = workersProblem(workers, config)
  if (problem) fail(`--workers ${problem}`)
  if (workers > 1 && cluster.isPrimary) {
    superviseWorkers(workers, config.server.shutdownTimeoutMs + 5000)
    return
  }
  await serve(config, cluster.isWorker ? process.env.GATEHOUSE_WORKER : undefined)
}

/** One gateway process; a worker's node id is `server.nodeId` with its number, when one is configured. */
async function serve (config: Readonly<GatewayConfig>, worker: string | undefined): Promise<void> {
  const nodeId = worker !== undefined && config.server.nodeId !== undefined ? `${config.server.nodeId}-${worker}` : undefined
  const app = await createGateway(config, { nodeId })
  try {
    await app.listen()
  } catch (err) {
    fail(`cannot listen on ${config.server.host}:${config.server.port}: ${(err as Error).message}`)
  }

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    app.log.info({ signal }, 'draining: closing clients with 1001 and flushing backend links')
    // the drain is bounded by shutdownTimeoutMs; this only guards against a hang elsewhere
    setTimeout(() => {
      app.log.error('shutdown did not finish in time; exiting')
      process.exit(1)
    }, config.server.shutdownTimeoutMs + 5000).unref()
    app.close().then(() => process.exit(0), (err: unknown) => {
      app.log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
}

function fail (message: string): never {
  process.stderr.write(`gatehouse: ${message}\n`)
  process.exit(1)
}

await main()
