/**
 * The example lobby: who is online, a chat room, and challenges. An accepted
 * challenge yields a match id that both players take to the game service.
 * The lobby remembers who is in which match until the game service reports
 * it over (`matchOver`), so a player in a match cannot be challenged, and a
 * player who closed the tab is sent back to the match on their return.
 * All state is in memory; presence is rebuilt from the gateway's `sync`
 * (through `onOpen`) when the service restarts; challenges and matches are not.
 */
import { randomBytes } from 'node:crypto'
import type { BackendHandlers, GatehouseBackend } from '../../src/sdk/index.js'
import { MAX_CHAT_LENGTH, type ChatLine, type LobbyUpdate, type MatchSeat } from './messages.js'

/** What the lobby needs from the SDK, so it can be driven without sockets. */
export type LobbyOutbox = Pick<GatehouseBackend, 'send'>

/** Chat lines a newcomer is shown. */
const HISTORY_LENGTH = 20

interface Challenge {
  to: string
  rematch: boolean
}

export class Lobby implements BackendHandlers {
  /** Online players, in the order they arrived. */
  private readonly players = new Set<string>()
  /** challenger → challenge; one open challenge per challenger. */
  private readonly challenges = new Map<string, Challenge>()
  /** Players in a match that is not over, online or not. */
  private readonly seats = new Map<string, MatchSeat>()
  /** Each player's last finished match, which they may ask a rematch of. */
  private readonly finished = new Map<string, MatchSeat>()
  private readonly history: ChatLine[] = []

  constructor (private readonly outbox: LobbyOutbox) {}

  online (): string[] {
    return [...this.players]
  }

  /** Players in a match that is not over. */
  busy (): string[] {
    return [...this.seats.keys()]
  }

  /** The game service's word that a match ended (won, drawn, resigned, forfeited, or abandoned before it began). */
  matchOver (matchId: string): void {
    let changed = false
    for (const [player, seat] of this.seats) {
      if (seat.matchId !== matchId) continue
      this.seats.delete(player)
      this.finished.set(player, seat)
      changed = true
    }
    if (changed) this.announcePlayers()
  }

  onOpen (user: string): void {
    this.players.add(user)
    const match = this.seats.get(user)
    this.tell(user, { type: 'welcome', you: user, players: this.online(), busy: this.busy(), history: this.history, ...(match ? { match } : {}) })
    this.announcePlayers()
  }

  onClose (user: string): void {
    if (!this.players.delete(user)) return
    this.challenges.delete(user)
    for (const [from, challenge] of this.challenges) if (challenge.to === user) this.challenges.delete(from)
    this.announcePlayers()
  }

  onMessage (user: string, data: unknown): void {
    const request = data as Record<string, unknown> | null
    switch (typeof request === 'object' && request !== null ? request.type : undefined) {
      case 'chat': return this.chat(user, request?.text)
      case 'challenge': return this.challenge(user, request?.to, false)
      case 'accept': return this.answer(user, request?.from, true)
      case 'decline': return this.answer(user, request?.from, false)
      case 'rematch': return this.rematch(user, request?.matchId)
      default: return this.fail(user, 'unknown request: expected {"type": "chat" | "challenge" | "accept" | "decline" | "rematch", ...}')
    }
  }

  private chat (user: string, text: unknown): void {
    const line = typeof text === 'string' ? text.trim() : ''
    if (line === '' || line.length > MAX_CHAT_LENGTH) return this.fail(user, `chat text must be 1-${MAX_CHAT_LENGTH} characters`)
    const entry: ChatLine = { from: user, text: line, at: Date.now() }
    this.history.push(entry)
    if (this.history.length > HISTORY_LENGTH) this.history.shift()
    this.outbox.send(this.online(), { type: 'chat', ...entry } satisfies LobbyUpdate)
  }

  private challenge (user: string, to: unknown, rematch: boolean): void {
    if (typeof to !== 'string' || !this.players.has(to)) return this.fail(user, 'that player is not online')
    if (to === user) return this.fail(user, 'you cannot challenge yourself')
    if (this.seats.has(user)) return this.fail(user, 'you are in a match: finish it first')
    if (this.seats.has(to)) return this.fail(user, `${to} is in a match`)
    this.challenges.set(user, { to, rematch })
    this.tell(to, { type: 'challenged', from: user, rematch })
    this.tell(user, { type: 'challenge-sent', to, rematch })
  }

  private rematch (user: string, matchId: unknown): void {
    if (typeof matchId !== 'string') return this.fail(user, 'you did not play in that match')
    if (this.seats.get(user)?.matchId === matchId) return this.fail(user, 'that match is not over yet')
    const last = this.finished.get(user)
    if (last?.matchId !== matchId) return this.fail(user, 'you did not play in that match')
    this.challenge(user, last.opponent, true)
  }

  private answer (user: string, from: unknown, accepted: boolean): void {
    if (typeof from !== 'string' || this.challenges.get(from)?.to !== user) return this.fail(user, 'no such challenge')
    if (accepted && this.seats.has(user)) return this.fail(user, 'you are in a match: finish it first')
    this.challenges.delete(from)
    if (!accepted) {
      this.tell(from, { type: 'declined', by: user })
      return
    }
    // unguessable, so only these two can find the match (the game seats whoever arrives first)
    const matchId = randomBytes(9).toString('base64url')
    this.seats.set(from, { matchId, opponent: user })
    this.seats.set(user, { matchId, opponent: from })
    // neither takes an open challenge into the match; whoever was waiting on one of them is told
    for (const [challenger, challenge] of this.challenges) {
      if (challenger === user || challenger === from) this.challenges.delete(challenger)
      else if (challenge.to === user || challenge.to === from) {
        this.challenges.delete(challenger)
        this.fail(challenger, `${challenge.to} is in a match now`)
      }
    }
    this.tell(from, { type: 'match', matchId, opponent: user })
    this.tell(user, { type: 'match', matchId, opponent: from })
    this.announcePlayers()
  }

  private announcePlayers (): void {
    this.outbox.send(this.online(), { type: 'players', players: this.online(), busy: this.busy() } satisfies LobbyUpdate)
  }

  private fail (user: string, message: string): void {
    this.tell(user, { type: 'error', message })
  }

  private tell (user: string, update: LobbyUpdate): void {
    this.outbox.send(user, update)
  }
}
