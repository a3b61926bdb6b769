/** The lobby's messages, shared by the service and the browser client. */

export type LobbyRequest =
  | { type: 'chat', text: string }
  | { type: 'challenge', to: string }
  | { type: 'accept', from: string }
  | { type: 'decline', from: string }

export interface ChatLine {
  from: string
  text: string
  /** Epoch milliseconds. */
  at: number
}

export type LobbyUpdate =
  | { type: 'welcome', you: string, players: string[], history: ChatLine[] }
  | { type: 'players', players: string[] }
  | ({ type: 'chat' } & ChatLine)
  | { type: 'challenged', from: string }
  | { type: 'challenge-sent', to: string }
  | { type: 'declined', by: string }
  /** An accepted challenge: both players connect to `/game/<matchId>`. */
  | { type: 'match', matchId: string, opponent: string }
  | { type: 'error', message: string }

/** Longest chat line, in characters. */
export const MAX_CHAT_LENGTH = 280
