#!/usr/bin/env node
/**
 * `npm run demo`: the lobby and game services, the gateway from
 * gateway.config.json, and the demo page, in one process. Ctrl-C stops it.
 */
import { ConfigError } from '../../src/index.js'
import { startDemo } from './start-demo.js'

let demo
try {
  demo = await startDemo({ configFile: process.env.GATEHOUSE_CONFIG })
} catch (err) {
  const detail = err instanceof ConfigError ? err.problems.join('\n  ') : (err as Error).message
  process.stderr.write(`gatehouse demo: cannot start:\n  ${detail}\n`)
  process.exit(1)
}
const running = demo
if (running.generated.length > 0) {
  process.stderr.write(`gatehouse demo: made up ${running.generated.join(', ')} for this run (set them to choose your own)\n`)
}
process.stderr.write(`\n  Gatehouse demo is running: open ${running.url} in two browser tabs (or two browsers) and pick a name in each.\n\n`)

let stopping = false
const stop = (): void => {
  if (stopping) return
  stopping = true
  running.close().then(() => process.exit(0), (err: unknown) => {
    process.stderr.write(`gatehouse demo: shutdown failed: ${(err as Error).message}\n`)
    process.exit(1)
  })
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
