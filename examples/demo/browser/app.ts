/**
 * The demo page: pick a name, get a demo token, join the lobby, accept or
 * make a challenge, and play. The name is kept in sessionStorage, so a reload
 * joins again by itself; the lobby's welcome names the match the player is
 * still in, so a reload or a reopened tab (same name) goes back to it.
 */
import type { LobbyRequest, LobbyUpdate, MatchSeat } from '../../lobby/messages.js'
import type { GameRequest, GameUpdate } from '../../game/messages.js'
import { Connection, type ConnectionState } from './connection.js'
import { DemoTokens } from './demo-tokens.js'
import { byId } from './dom.js'
import { GameView } from './game-view.js'
import { LobbyView } from './lobby-view.js'

const NAME_KEY = 'gatehouse-demo-name'

let tokens: DemoTokens | undefined
let lobby: Connection | undefined
let game: Connection | undefined
let matchId: string | undefined

const lobbyView = new LobbyView({
  chat: (text) => sendLobby({ type: 'chat', text }),
  challenge: (to) => sendLobby({ type: 'challenge', to }),
  answer: (from, accept) => sendLobby({ type: accept ? 'accept' : 'decline', from })
})

const gameView = new GameView({
  move: (column, at) => sendGame({ type: 'move', column, at }),
  resign: () => sendGame({ type: 'resign' }),
  rematch: (id) => sendLobby({ type: 'rematch', matchId: id }),
  leave: () => leaveMatch()
})

function sendLobby (request: LobbyRequest): void {
  lobby?.send(request)
}

function sendGame (request: GameRequest): void {
  game?.send(request)
}

/** Mirrors a connection's state into its badge, for people and for the end-to-end test. */
function showState (which: 'Lobby' | 'Game') {
  return (state: ConnectionState, detail: string): void => {
    const badge = byId(`${which.toLowerCase()}-status`)
    badge.dataset.state = state
    badge.textContent = `${which}: ${detail}`
  }
}

/** Another tab took over this player (4409): say so, and stop taking input that would go nowhere. */
function replaced (): void {
  byId('replaced').hidden = false
  document.querySelector('main')?.setAttribute('inert', '')
  lobby?.close('opened in another tab', 'closed')
  game?.close('opened in another tab', 'closed')
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
    state: showState('Lobby'),
    replaced,
    message: (data) => {
      const update = data as LobbyUpdate
      if (update.type === 'match') playMatch(update)
      if (update.type === 'welcome' && update.match) playMatch(update.match)
      lobbyView.update(update)
    }
  })
}

function playMatch ({ matchId: id, opponent }: MatchSeat): void {
  // the lobby's welcome after a blip names the match this page is already in
  if (!tokens || (id === matchId && game)) return
  game?.close('not in a match')
  matchId = id
  gameView.open(id, opponent)
  game = new Connection(`/game/${encodeURIComponent(id)}`, tokens, {
    state: showState('Game'),
    replaced,
    message: (data) => {
      const update = data as GameUpdate
      if (update.type === 'state') gameView.show(update)
      else gameView.error(update.message)
    }
  })
}

function leaveMatch (): void {
  game?.close('not in a match')
  game = undefined
  matchId = undefined
  lobbyView.say('')
  gameView.close()
}

byId<HTMLFormElement>('join-form').addEventListener('submit', (event) => {
  event.preventDefault()
  void join(byId<HTMLInputElement>('name').value.trim())
})

const remembered = sessionStorage.getItem(NAME_KEY)
if (remembered) void join(remembered)
