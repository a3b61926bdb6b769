#!/usr/bin/env node
/**
 * One game-service instance as its own process, for a pool of them behind
 * one endpoint (`npm run demo:pool`, docs/pools.md). Reads its settings from
 * the environment:
 *
 *   GAME_PORT (0: a free port), GAME_HOST (127.0.0.1),
 *   GAME_BACKEND_TOKEN (the gateway's backend.token; unset: any caller, for local development),
 *   GAME_STORE_DIR (required: the directory every instance shares for match state),
 *   GAME_GRACE_MS (30000), GAME_LINK_GRACE_MS (30000).
 *
 * Started with an IPC channel (child_process.fork), it reports
 * `{type: 'listening', port}` once up and `{type: 'matchOver', matchId}` for
 * the lobby. SIGTERM stops it cleanly.
 */
import { pino } from 'pino'
import { startGame } from './index.js'
import { FileStore } from './store.js'

function intSetting (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 0) {
    process.stderr.write(`game: ${name} must be a whole number of at least 0, got "${raw}"\n`)
    process.exit(2)
  }
  return value
}

const storeDir = process.env.GAME_STORE_DIR
if (storeDir === undefined || storeDir === '') {
  process.stderr.write('game: GAME_STORE_DIR must name the directory the instances share for match state\n')
  process.exit(2)
}
const token = process.env.GAME_BACKEND_TOKEN === '' ? undefined : process.env.GAME_BACKEND_TOKEN
const logger = pino({ level: process.env.LOG_LEVEL ?? 'info' }).child({ service: 'game' })
const running = await startGame({
  port: intSetting('GAME_PORT', 0),
  host: process.env.GAME_HOST ?? '127.0.0.1',
  token,
  allowUnauthenticated: token === undefined,
  logger,
  graceMs: intSetting('GAME_GRACE_MS', 30000),
  linkGraceMs: intSetting('GAME_LINK_GRACE_MS', 30000),
  store: new FileStore(storeDir),
  onMatchOver: (matchId) => process.send?.({ type: 'matchOver', matchId })
})
process.send?.({ type: 'listening', port: running.port })
logger.info({ url: running.url }, 'game instance listening')

process.once('SIGTERM', () => {
  running.stop().then(() => process.exit(0), () => process.exit(1))
})
// the demo that started us is gone: do not linger as an orphan
process.on('disconnect', () => { void running.stop().finally(() => process.exit(0)) })
