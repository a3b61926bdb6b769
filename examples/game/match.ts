/**
 * One Connect Four match: its two seats, whose turn it is, and how it ended.
 * Knows nothing of sockets; the service tells it who did what.
 */
import { Board, type Disc } from './connect-four.js'
import type { GameResult, GameStatus } from './messages.js'
import type { SavedMatch } from './store.js'

export type MoveOutcome = { ok: true } | { ok: false, problem: string }

export class Match {
  readonly players: Record<Disc, string | null> = { red: null, yellow: null }
  turn: Disc = 'red'
  result?: GameResult

  constructor (readonly id: string, readonly board = new Board()) {}

  /** A match as another instance stored it. */
  static from (saved: SavedMatch): Match {
    const match = new Match(saved.id, Board.from(saved.cells))
    Object.assign(match.players, saved.players)
    match.turn = saved.turn
    if (saved.result) match.result = saved.result
    return match
  }

  toSaved (): SavedMatch {
    return { id: this.id, players: { ...this.players }, cells: this.board.cells, turn: this.turn, ...(this.result ? { result: this.result } : {}) }
  }

  get status (): GameStatus {
    if (this.result) return 'over'
    return this.players.red !== null && this.players.yellow !== null ? 'playing' : 'waiting'
  }

  discOf (user: string): Disc | undefined {
    if (this.players.red === user) return 'red'
    if (this.players.yellow === user) return 'yellow'
    return undefined
  }

  /** Seats `user` in the first free seat (red moves first); undefined when both are taken. */
  seat (user: string): Disc | undefined {
    const seated = this.discOf(user)
    if (seated) return seated
    for (const disc of ['red', 'yellow'] as const) {
      if (this.players[disc] === null) {
        this.players[disc] = user
        return disc
      }
    }
    return undefined
  }

  move (user: string, column: unknown): MoveOutcome {
    const disc = this.discOf(user)
    if (!disc) return { ok: false, problem: 'you are not playing in this match' }
    if (this.status !== 'playing') return { ok: false, problem: this.status === 'over' ? 'the game is over' : 'waiting for an opponent' }
    if (disc !== this.turn) return { ok: false, problem: 'not your turn' }
    const dropped = this.board.drop(column, disc)
    if (!dropped.ok) return dropped
    const line = this.board.lineThrough(dropped.row, column as number)
    if (line) this.result = { winner: disc, reason: 'four', line }
    else if (this.board.isFull) this.result = { winner: null, reason: 'draw' }
    else this.turn = other(disc)
    return { ok: true }
  }

  /** `user` gives up (or stayed away too long): the other player wins. */
  concede (user: string, reason: 'resign' | 'forfeit'): boolean {
    const disc = this.discOf(user)
    if (!disc || this.status !== 'playing') return false
    this.result = { winner: other(disc), reason }
    return true
  }
}

function other (disc: Disc): Disc {
  return disc === 'red' ? 'yellow' : 'red'
}
