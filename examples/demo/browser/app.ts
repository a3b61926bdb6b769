/**
 * The demo page: pick a name, get a demo token, join the lobby, accept or
 * make a challenge, and play. The name and the current match are kept in
 * sessionStorage, so a reload rejoins the same match.
 */
import type { LobbyRequest, LobbyUpdate } from '../../lobby/messages.js'
import type { GameRequest, GameUpdate } from '../../game/messages.js'
import { Connection, type ConnectionState } from './connection.js'
import { DemoTokens } from './demo-tokens.js'
import { byId } from './dom.js'
import { GameView } from './game-view.js'
import { LobbyView } from './lobby-view.js'

const NAME_KEY = 'gatehouse-demo-name'
const MATCH_KEY = 'gatehouse-demo-match'

let tokens: DemoTokens | undefined
let lobby: Connection | undefined
let game: Connection | undefined

const lobbyView = new LobbyView({
  chat: (text) => sendLobby({ type: 'chat', text }),
  challenge: (to) => sendLobby({ type: 'challenge', to }),
  answer: (from, accept) => sendLobby({ type: accept ? 'accept' : 'decline', from })
})

const gameView = new GameView({
  move: (column) => sendGame({ type: 'move', column }),
  resign: () => sendGame({ type: 'resign' }),
  leave: () => leaveMatch()
})

function sendLobby (request: LobbyRequest): void {
  lobby?.send(request)
}

function sendGame (request: GameRequest): void {
  game?.send(request)
}

/** Mirrors a connection's state into its badge, for people and for the end-to-end test. */
function showState (which: 'lobby' | 'game') {
  return (state: ConnectionState, detail: string): void => {
    const badge = byId(`${which}-status`)
    badge.dataset.state = state
    badge.textContent = `${which}: ${state}${detail ? ` (${detail})` : ''}`
  }
}

async function join (name: string): Promise<void> {
  const error = byId('join-error')
  tokens = new DemoTokens(name)
  try {
    await tokens.fetch()
  } catch (err) {
    error.textContent = `Cannot join: ${(err as Error).message}`
    return
  }
  error.textContent = ''
  sessionStorage.setItem(NAME_KEY, name)
  byId('you').textContent = `Playing as ${name}`
  byId('join').hidden = true
  byId('lobby').hidden = false
  lobby = new Connection('/lobby', tokens, {
    state: showState('lobby'),
    message: (data) => {
      const update = data as LobbyUpdate
      if (update.type === 'match') playMatch(update.matchId)
      lobbyView.update(update)
    }
  })
  const matchId = sessionStorage.getItem(MATCH_KEY)
  if (matchId) playMatch(matchId)
}

function playMatch (matchId: string): void {
  if (!tokens) return
  game?.close()
  sessionStorage.setItem(MATCH_KEY, matchId)
  gameView.open(matchId)
  game = new Connection(`/game/${encodeURIComponent(matchId)}`, tokens, {
    state: showState('game'),
    message: (data) => {
      const update = data as GameUpdate
      if (update.type === 'state') gameView.show(update)
      else gameView.error(update.message)
    }
  })
}

function leaveMatch (): void {
  game?.close()
  game = undefined
  sessionStorage.removeItem(MATCH_KEY)
  gameView.close()
}

byId<HTMLFormElement>('join-form').addEventListener('submit', (event) => {
  event.preventDefault()
  void join(byId<HTMLInputElement>('name').value.trim())
})

const remembered = sessionStorage.getItem(NAME_KEY)
if (remembered) void join(remembered)
