/** The game's messages, shared by the service and the browser client. */
import type { Cell, Cells, Disc } from './connect-four.js'

export type { Cell, Cells, Disc }

export type GameRequest =
  /**
   * `at`: the number of discs on the board the player moved on. A move for
   * another board is stale: the service answers with the current state and
   * takes nothing. So an event replayed to an instance that already stored
   * its effect (a failover, docs/pools.md) is not applied twice.
   */
  | { type: 'move', column: number, at?: number }
  | { type: 'resign' }

export type GameStatus = 'waiting' | 'playing' | 'over'

export interface GameResult {
  /** Null for a draw. */
  winner: Disc | null
  reason: 'four' | 'draw' | 'resign' | 'forfeit'
  /** The winning four (or more), for `four`. */
  line?: Cell[]
}

/** The whole match, sent after every change, so a reconnecting player needs nothing else. */
export interface GameState {
  type: 'state'
  matchId: string
  you: Disc
  players: Record<Disc, string | null>
  cells: Cells
  turn: Disc
  status: GameStatus
  result?: GameResult
  /** Players whose connection dropped and who lose if they are not back within `graceMs`. */
  away: string[]
  /** For each away player, how long they have left, in milliseconds, when this state was sent. */
  forfeitInMs: Record<string, number>
  graceMs: number
}

export type GameUpdate = GameState | { type: 'error', message: string }

/** Close codes the game uses (4000-4999, passed through by the gateway). */
export const GameCloses = {
  NO_MATCH_ID: { code: 4400, reason: 'connect to /game/<matchId>' },
  MATCH_FULL: { code: 4403, reason: 'this match already has two players' }
} as const
