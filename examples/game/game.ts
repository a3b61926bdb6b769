/**
 * The example game service: Connect Four matches keyed by the `:matchId` path
 * parameter. It checks every move, keeps turn order, detects wins and draws,
 * and makes a player who disconnects mid-game lose after `graceMs` unless
 * they come back (a page reload is back in time).
 *
 * Matches live in memory: a restarted service reseats the players `sync`
 * reports, on a fresh board.
 */
import type { BackendHandlers, GatehouseBackend, Params } from '../../src/sdk/index.js'
import { Match } from './match.js'
import { GameCloses, type GameState, type GameUpdate } from './messages.js'

export type GameOutbox = Pick<GatehouseBackend, 'send' | 'close'>

export interface GameOptions {
  /** How long a player who dropped mid-game has to come back before losing. @default 30000 */
  graceMs?: number
  /** Called once per match when it ends: a result, or abandoned before an opponent came (the lobby frees both players). */
  onMatchOver?: (matchId: string) => void
}

export class GameService implements BackendHandlers {
  private readonly matches = new Map<string, Match>()
  /** Seated players who are connected right now, by match. */
  private readonly present = new Map<Match, Set<string>>()
  private readonly forfeits = new Map<string, { timer: NodeJS.Timeout, at: number }>()
  private readonly ended = new WeakSet<Match>()
  private readonly graceMs: number

  constructor (private readonly outbox: GameOutbox, private readonly options: GameOptions = {}) {
    this.graceMs = options.graceMs ?? 30000
  }

  /** A match by id, for inspection (tests, an admin page). */
  match (id: string): Match | undefined {
    return this.matches.get(id)
  }

  onOpen (user: string, _claims: unknown, params: Params): void {
    const id = params.matchId
    if (!id) {
      this.outbox.close(user, GameCloses.NO_MATCH_ID.code, GameCloses.NO_MATCH_ID.reason)
      return
    }
    const match = this.matches.get(id) ?? this.create(id)
    if (!match.seat(user)) {
      this.outbox.close(user, GameCloses.MATCH_FULL.code, GameCloses.MATCH_FULL.reason)
      return
    }
    clearTimeout(this.forfeits.get(forfeitKey(match, user))?.timer)
    this.forfeits.delete(forfeitKey(match, user))
    this.present.get(match)?.add(user)
    this.publish(match)
  }

  onMessage (user: string, data: unknown, { params }: { params: Params }): void {
    const match = this.matches.get(params.matchId ?? '')
    if (!match || !this.present.get(match)?.has(user)) return
    const request = data as Record<string, unknown> | null
    const type = typeof request === 'object' && request !== null ? request.type : undefined
    if (type === 'move') {
      const outcome = match.move(user, request?.column)
      if (!outcome.ok) return this.tell(user, { type: 'error', message: outcome.problem })
    } else if (type === 'resign') {
      if (!match.concede(user, 'resign')) return this.tell(user, { type: 'error', message: 'nothing to resign' })
    } else {
      return this.tell(user, { type: 'error', message: 'unknown request: expected {"type": "move", "column": 0-6} or {"type": "resign"}' })
    }
    this.publish(match)
    if (match.status === 'over') this.end(match)
  }

  onClose (user: string, _code: number, _reason: string, { params }: { params: Params }): void {
    const match = this.matches.get(params.matchId ?? '')
    const present = match && this.present.get(match)
    if (!match || !present?.delete(user)) return
    if (match.status === 'playing') {
      const timer = setTimeout(() => {
        this.forfeits.delete(forfeitKey(match, user))
        if (match.concede(user, 'forfeit')) this.publish(match)
        this.end(match)
        this.forget(match)
      }, this.graceMs)
      this.forfeits.set(forfeitKey(match, user), { timer, at: Date.now() + this.graceMs })
      this.publish(match)
    } else {
      this.forget(match)
    }
  }

  /** Clears every pending forfeit timer (service shutdown). */
  stop (): void {
    for (const { timer } of this.forfeits.values()) clearTimeout(timer)
    this.forfeits.clear()
  }

  private create (id: string): Match {
    const match = new Match(id)
    this.matches.set(id, match)
    this.present.set(match, new Set())
    return match
  }

  /** A match nobody is connected to and nobody can still lose by forfeit is dropped (one that never began, abandoned). */
  private forget (match: Match): void {
    if ((this.present.get(match)?.size ?? 0) > 0 || match.status === 'playing') return
    this.matches.delete(match.id)
    this.present.delete(match)
    this.end(match)
  }

  private end (match: Match): void {
    if (this.ended.has(match)) return
    this.ended.add(match)
    this.options.onMatchOver?.(match.id)
  }

  /** Sends the whole state to each connected player, from their side of the board. */
  private publish (match: Match): void {
    const present = this.present.get(match) ?? new Set<string>()
    const seated = [match.players.red, match.players.yellow].filter((p): p is string => p !== null)
    for (const user of present) {
      const you = match.discOf(user)
      if (!you) continue
      const state: GameState = {
        type: 'state',
        matchId: match.id,
        you,
        players: { ...match.players },
        cells: match.board.cells,
        turn: match.turn,
        status: match.status,
        ...(match.result ? { result: match.result } : {}),
        away: seated.filter((p) => !present.has(p)),
        forfeitInMs: Object.fromEntries(seated.flatMap((p) => {
          const pending = this.forfeits.get(forfeitKey(match, p))
          return pending ? [[p, Math.max(0, pending.at - Date.now())]] : []
        })),
        graceMs: this.graceMs
      }
      this.tell(user, state)
    }
  }

  private tell (user: string, update: GameUpdate): void {
    this.outbox.send(user, update)
  }
}

function forfeitKey (match: Match, user: string): string {
  return `${match.id}\n${user}`
}
