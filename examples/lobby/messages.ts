/** The lobby's messages, shared by the service and the browser client. */

export type LobbyRequest =
  | { type: 'chat', text: string }
  | { type: 'challenge', to: string }
  | { type: 'accept', from: string }
  | { type: 'decline', from: string }
  /** Another game against the opponent of `matchId`, once it is over: a challenge the opponent accepts or declines. */
  | { type: 'rematch', matchId: string }

export interface ChatLine {
  from: string
  text: string
  /** Epoch milliseconds. */
  at: number
}

/** A match a player is in: they cannot be challenged until the game service reports it over. */
export interface MatchSeat {
  matchId: string
  opponent: string
}

export type LobbyUpdate =
  /** `match`: the player is still in a match (a reopened tab rejoins `/game/<matchId>`). */
  | { type: 'welcome', you: string, players: string[], busy: string[], history: ChatLine[], match?: MatchSeat }
  /** `busy`: the players in a match, online or not. */
  | { type: 'players', players: string[], busy: string[] }
  | ({ type: 'chat' } & ChatLine)
  | { type: 'challenged', from: string, rematch: boolean }
  | { type: 'challenge-sent', to: string, rematch: boolean }
  | { type: 'declined', by: string }
  /** An accepted challenge: both players connect to `/game/<matchId>`. */
  | ({ type: 'match' } & MatchSeat)
  | { type: 'error', message: string }

/** Longest chat line, in characters. */
export const MAX_CHAT_LENGTH = 280
