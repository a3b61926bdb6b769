/** Starts the example game service on the SDK. */
import { GatehouseBackend, type BackendLogger } from '../../src/sdk/index.js'
import { GameService } from './game.js'
import type { MatchStore } from './store.js'

export interface GameServiceOptions {
  port?: number
  host?: string
  /** The bearer token the gateway presents (`backend.token` in its config). */
  token?: string
  /** Without `token`: accept any caller (local development only; logged as a warning). */
  allowUnauthenticated?: boolean
  logger?: BackendLogger
  /** @default 30000 */
  linkGraceMs?: number
  /** How long a player who dropped mid-game has to come back. @default 30000 */
  graceMs?: number
  /** Called once per match when it ends (a result, or abandoned before it began). */
  onMatchOver?: (matchId: string) => void
  /** Where matches are kept; a store shared by several instances lets a pool move a match (docs/pools.md). @default in memory */
  store?: MatchStore
}

export interface RunningGame {
  game: GameService
  backend: GatehouseBackend
  port: number
  url: string
  stop (): Promise<void>
}

export async function startGame (options: GameServiceOptions = {}): Promise<RunningGame> {
  // auto acks wait for the handlers, which wait for the store: a move is acknowledged once stored
  const backend = new GatehouseBackend({ token: options.token, allowUnauthenticated: options.allowUnauthenticated, logger: options.logger, linkGraceMs: options.linkGraceMs, acks: 'auto' })
  const game = new GameService(backend, {
    graceMs: options.graceMs,
    onMatchOver: options.onMatchOver,
    store: options.store,
    onStoreError: (matchId, error) => options.logger?.error({ matchId, err: error }, 'match store failed')
  })
  backend.handle(game)
  const { port, url } = await backend.listen({ port: options.port, host: options.host })
  const stop = async (): Promise<void> => {
    game.stop()
    await backend.stop()
  }
  return { game, backend, port, url, stop }
}
