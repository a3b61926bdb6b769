/**
 * The example game service: Connect Four matches keyed by the `:matchId` path
 * parameter. It checks every move, keeps turn order, detects wins and draws,
 * and makes a player who disconnects mid-game lose after `graceMs` unless
 * they come back (a page reload is back in time).
 *
 * Each match is kept in a `MatchStore` and stored after every change,
 * before the players see it (and, with acks, before the gateway is told the
 * move was taken). With the default in-memory store a restarted service
 * reseats the players `sync` reports, on a fresh board; with a store several
 * instances share (a `FileStore` directory), an instance that is handed a
 * match it never saw (a pool's failover, docs/pools.md) loads it and the
 * game goes on where it was.
 */
import type { BackendHandlers, GatehouseBackend, Params } from '../../src/sdk/index.js'
import { Match } from './match.js'
import { GameCloses, type GameState, type GameUpdate } from './messages.js'
import { MemoryStore, type MatchStore } from './store.js'

export type GameOutbox = Pick<GatehouseBackend, 'send' | 'close'>

export interface GameOptions {
  /** How long a player who dropped mid-game has to come back before losing. @default 30000 */
  graceMs?: number
  /** Called once per match when it ends: a result, or abandoned before an opponent came (the lobby frees both players). */
  onMatchOver?: (matchId: string) => void
  /** Where matches are kept. @default a MemoryStore */
  store?: MatchStore
  /** A store failure outside a handler (a forfeit's clean-up); inside one, the handler rejects and the SDK reports it. */
  onStoreError?: (matchId: string, error: unknown) => void
}

export class GameService implements BackendHandlers {
  private readonly matches = new Map<string, Match>()
  /** Matches being read from the store, so two opens at once get the same one. */
  private readonly loading = new Map<string, Promise<Match>>()
  private readonly store: MatchStore
  /** Seated players who are connected right now, by match. */
  private readonly present = new Map<Match, Set<string>>()
  private readonly forfeits = new Map<string, { timer: NodeJS.Timeout, at: number }>()
  private readonly ended = new WeakSet<Match>()
  private readonly graceMs: number

  constructor (private readonly outbox: GameOutbox, private readonly options: GameOptions = {}) {
    this.graceMs = options.graceMs ?? 30000
    this.store = options.store ?? new MemoryStore()
  }

  /** A match by id, for inspection (tests, an admin page). */
  match (id: string): Match | undefined {
    return this.matches.get(id)
  }

  async onOpen (user: string, _claims: unknown, params: Params): Promise<void> {
    const id = params.matchId
    if (!id) {
      this.outbox.close(user, GameCloses.NO_MATCH_ID.code, GameCloses.NO_MATCH_ID.reason)
      return
    }
    const match = await this.matchFor(id)
    const seatedBefore = match.discOf(user) !== undefined
    if (!match.seat(user)) {
      this.outbox.close(user, GameCloses.MATCH_FULL.code, GameCloses.MATCH_FULL.reason)
      return
    }
    clearTimeout(this.forfeits.get(forfeitKey(match, user))?.timer)
    this.forfeits.delete(forfeitKey(match, user))
    this.present.get(match)?.add(user)
    if (!seatedBefore) await this.store.save(match.toSaved())
    this.publish(match)
  }

  async onMessage (user: string, data: unknown, { params }: { params: Params }): Promise<void> {
    const match = this.matches.get(params.matchId ?? '')
    if (!match || !this.present.get(match)?.has(user)) return
    const request = data as Record<string, unknown> | null
    const type = typeof request === 'object' && request !== null ? request.type : undefined
    if (type === 'move') {
      const at = request?.at
      if (at !== undefined && (typeof at !== 'number' || !Number.isInteger(at))) return this.tell(user, { type: 'error', message: 'at must be the number of discs on the board you moved on' })
      // a move made on an earlier board (or replayed after its effect was stored): show the board as it is, take nothing
      if (at !== undefined && at !== match.board.placed) return this.publish(match, user)
      const outcome = match.move(user, request?.column)
      if (!outcome.ok) return this.tell(user, { type: 'error', message: outcome.problem })
    } else if (type === 'resign') {
      if (!match.concede(user, 'resign')) return this.tell(user, { type: 'error', message: 'nothing to resign' })
    } else {
      return this.tell(user, { type: 'error', message: 'unknown request: expected {"type": "move", "column": 0-6} or {"type": "resign"}' })
    }
    await this.store.save(match.toSaved())
    this.publish(match)
    if (match.status === 'over') this.end(match)
  }

  async onClose (user: string, _code: number, _reason: string, { params }: { params: Params }): Promise<void> {
    const match = this.matches.get(params.matchId ?? '')
    const present = match && this.present.get(match)
    if (!match || !present?.delete(user)) return
    if (match.status === 'playing') {
      const timer = setTimeout(() => {
        this.forfeits.delete(forfeitKey(match, user))
        if (match.concede(user, 'forfeit')) this.publish(match)
        this.end(match)
        this.forget(match).catch((error: unknown) => this.options.onStoreError?.(match.id, error))
      }, this.graceMs)
      this.forfeits.set(forfeitKey(match, user), { timer, at: Date.now() + this.graceMs })
      this.publish(match)
    } else {
      await this.forget(match)
    }
  }

  /** Clears every pending forfeit timer (service shutdown). */
  stop (): void {
    for (const { timer } of this.forfeits.values()) clearTimeout(timer)
    this.forfeits.clear()
  }

  /** The match in memory, else as stored (another instance held it), else a new one. */
  private async matchFor (id: string): Promise<Match> {
    const known = this.matches.get(id) ?? this.loading.get(id)
    if (known) return await known
    const loading = this.store.load(id).then((saved) => {
      const match = saved ? Match.from(saved) : new Match(id)
      this.matches.set(id, match)
      this.present.set(match, new Set())
      return match
    }).finally(() => this.loading.delete(id))
    this.loading.set(id, loading)
    return await loading
  }

  /** A match nobody is connected to and nobody can still lose by forfeit is dropped (one that never began, abandoned), and leaves the store. */
  private async forget (match: Match): Promise<void> {
    if ((this.present.get(match)?.size ?? 0) > 0 || match.status === 'playing') return
    this.matches.delete(match.id)
    this.present.delete(match)
    this.end(match)
    await this.store.remove(match.id)
  }

  private end (match: Match): void {
    if (this.ended.has(match)) return
    this.ended.add(match)
    this.options.onMatchOver?.(match.id)
  }

  /** Sends the whole state to each connected player (or to `only`), from their side of the board. */
  private publish (match: Match, only?: string): void {
    const present = this.present.get(match) ?? new Set<string>()
    const seated = [match.players.red, match.players.yellow].filter((p): p is string => p !== null)
    for (const user of present) {
      if (only !== undefined && user !== only) continue
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
