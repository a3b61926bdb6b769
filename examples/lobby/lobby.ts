/**
 * The example lobby: who is online, a chat room, and challenges. An accepted
 * challenge yields a match id that both players take to the game service.
 * All state is in memory and rebuilt from the gateway's `sync` (through
 * `onOpen`) when the service restarts; open challenges do not survive it.
 */
import { randomBytes } from 'node:crypto'
import type { BackendHandlers, GatehouseBackend } from '../../src/sdk/index.js'
import { MAX_CHAT_LENGTH, type ChatLine, type LobbyUpdate } from './messages.js'

/** What the lobby needs from the SDK, so it can be driven without sockets. */
export type LobbyOutbox = Pick<GatehouseBackend, 'send'>

/** Chat lines a newcomer is shown. */
const HISTORY_LENGTH = 20

export class Lobby implements BackendHandlers {
  /** Online players, in the order they arrived. */
  private readonly players = new Set<string>()
  /** challenger → challenged; one open challenge per challenger. */
  private readonly challenges = new Map<string, string>()
  private readonly history: ChatLine[] = []

  constructor (private readonly outbox: LobbyOutbox) {}

  online (): string[] {
    return [...this.players]
  }

  onOpen (user: string): void {
    this.players.add(user)
    this.tell(user, { type: 'welcome', you: user, players: this.online(), history: this.history })
    this.announcePlayers()
  }

  onClose (user: string): void {
    if (!this.players.delete(user)) return
    this.challenges.delete(user)
    for (const [from, to] of this.challenges) if (to === user) this.challenges.delete(from)
    this.announcePlayers()
  }

  onMessage (user: string, data: unknown): void {
    const request = data as Record<string, unknown> | null
    switch (typeof request === 'object' && request !== null ? request.type : undefined) {
      case 'chat': return this.chat(user, request?.text)
      case 'challenge': return this.challenge(user, request?.to)
      case 'accept': return this.answer(user, request?.from, true)
      case 'decline': return this.answer(user, request?.from, false)
      default: return this.fail(user, 'unknown request: expected {"type": "chat" | "challenge" | "accept" | "decline", ...}')
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

  private challenge (user: string, to: unknown): void {
    if (typeof to !== 'string' || !this.players.has(to)) return this.fail(user, 'that player is not online')
    if (to === user) return this.fail(user, 'you cannot challenge yourself')
    this.challenges.set(user, to)
    this.tell(to, { type: 'challenged', from: user })
    this.tell(user, { type: 'challenge-sent', to })
  }

  private answer (user: string, from: unknown, accepted: boolean): void {
    if (typeof from !== 'string' || this.challenges.get(from) !== user) return this.fail(user, 'no such challenge')
    this.challenges.delete(from)
    if (!accepted) {
      this.tell(from, { type: 'declined', by: user })
      return
    }
    // unguessable, so only these two can find the match (the game seats whoever arrives first)
    const matchId = randomBytes(9).toString('base64url')
    this.tell(from, { type: 'match', matchId, opponent: user })
    this.tell(user, { type: 'match', matchId, opponent: from })
  }

  private announcePlayers (): void {
    this.outbox.send(this.online(), { type: 'players', players: this.online() } satisfies LobbyUpdate)
  }

  private fail (user: string, message: string): void {
    this.tell(user, { type: 'error', message })
  }

  private tell (user: string, update: LobbyUpdate): void {
    this.outbox.send(user, update)
  }
}
