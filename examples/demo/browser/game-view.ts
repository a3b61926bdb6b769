/** The game panel: the Connect Four board (click a column to drop a disc), what is going on, and the forfeit countdown. */
import type { GameState } from '../../game/messages.js'
import { byId, el } from './dom.js'

export interface GameActions {
  /** `at`: the discs on the board the player clicked (a move for an older board is not taken). */
  move (column: number, at: number): void
  resign (): void
  rematch (matchId: string): void
  leave (): void
}

const COLUMNS = 7
const ROWS = 6

export class GameView {
  private readonly panel = byId('game')
  private readonly title = byId('game-title')
  private readonly info = byId('game-info')
  private readonly board = byId('board')
  private readonly resign = byId<HTMLButtonElement>('resign')
  private readonly rematch = byId<HTMLButtonElement>('rematch')
  private readonly leave = byId<HTMLButtonElement>('leave')
  private matchId = ''
  private countdown: ReturnType<typeof setInterval> | undefined

  constructor (actions: GameActions) {
    for (let column = 0; column < COLUMNS; column++) {
      const cells = Array.from({ length: ROWS }, (_, row) => el('span', { class: 'cell', 'data-row': String(row), 'data-col': String(column) }))
      const button = el('button', { type: 'button', class: 'column', 'data-col': String(column), 'aria-label': `drop in column ${column + 1}` }, ...cells)
      button.addEventListener('click', () => actions.move(column, Number(this.panel.dataset.moves ?? 0)))
      this.board.append(button)
    }
    this.resign.addEventListener('click', () => actions.resign())
    this.rematch.addEventListener('click', () => {
      this.rematch.disabled = true
      actions.rematch(this.matchId)
    })
    this.leave.addEventListener('click', () => actions.leave())
  }

  open (matchId: string, opponent?: string): void {
    this.stopCountdown()
    this.matchId = matchId
    this.panel.hidden = false
    Object.assign(this.panel.dataset, { match: matchId, status: 'connecting', result: '', moves: '0' })
    this.title.textContent = opponent ? `Match against ${opponent}` : 'Your match'
    this.info.textContent = 'Joining the match…'
    this.board.querySelectorAll<HTMLElement>('.cell').forEach((cell) => {
      delete cell.dataset.disc
      cell.classList.remove('winning')
    })
    this.board.querySelectorAll<HTMLButtonElement>('.column').forEach((button) => { button.disabled = true })
    this.resign.disabled = true
    this.rematch.hidden = true
    this.leave.hidden = false
    this.panel.scrollIntoView({ block: 'start' })
  }

  close (): void {
    this.stopCountdown()
    this.panel.hidden = true
  }

  show (state: GameState): void {
    this.stopCountdown()
    const opponent = state.players[state.you === 'red' ? 'yellow' : 'red']
    const yourTurn = state.status === 'playing' && state.turn === state.you
    Object.assign(this.panel.dataset, { you: state.you, status: state.status, turn: state.turn, moves: String(state.cells.flat().filter(Boolean).length) })
    this.title.textContent = opponent ? `You (${state.you}) vs ${opponent}` : `You play ${state.you}`
    this.board.querySelectorAll<HTMLElement>('.cell').forEach((cell) => {
      const disc = state.cells[Number(cell.dataset.row)][Number(cell.dataset.col)]
      if (disc) cell.dataset.disc = disc
      else delete cell.dataset.disc
      cell.classList.remove('winning')
    })
    for (const [row, column] of state.result?.line ?? []) {
      this.board.querySelector(`.cell[data-row="${row}"][data-col="${column}"]`)?.classList.add('winning')
    }
    this.board.querySelectorAll<HTMLButtonElement>('.column').forEach((button) => { button.disabled = !yourTurn })
    this.resign.disabled = state.status !== 'playing'
    // a match in play is left by resigning; one over (or never begun) by going back
    this.leave.hidden = state.status === 'playing'
    this.rematch.hidden = state.status !== 'over' || opponent === null
    this.rematch.disabled = false
    this.panel.dataset.result = state.result ? (state.result.winner === null ? 'draw' : state.result.winner === state.you ? 'win' : 'loss') : ''
    const forfeitInMs = opponent === null ? undefined : state.forfeitInMs[opponent]
    if (opponent !== null && forfeitInMs !== undefined && state.status === 'playing') {
      this.countDown(opponent, Date.now() + forfeitInMs)
    } else {
      delete this.panel.dataset.away
      this.info.textContent = describe(state, opponent)
    }
  }

  error (message: string): void {
    this.info.textContent = message
  }

  /** The opponent is away: say how long they have left, every second, until a new state comes. */
  private countDown (opponent: string, deadline: number): void {
    this.panel.dataset.away = opponent
    const tick = (): void => {
      const seconds = Math.max(0, Math.ceil((deadline - Date.now()) / 1000))
      this.info.textContent = `${opponent} left the game. They lose in ${seconds} s unless they come back.`
    }
    tick()
    this.countdown = setInterval(tick, 500)
  }

  private stopCountdown (): void {
    clearInterval(this.countdown)
    this.countdown = undefined
  }
}

function describe (state: GameState, opponent: string | null): string {
  const { result } = state
  if (result) {
    if (result.winner === null) return 'Draw: the board is full.'
    const how = { four: 'four in a row', resign: 'resignation', forfeit: 'forfeit (did not come back in time)', draw: '' }[result.reason]
    return result.winner === state.you ? `You win! (${how})` : `You lose (${how}).`
  }
  if (state.status === 'waiting') return 'Waiting for your opponent to join…'
  return state.turn === state.you ? 'Your turn: click a column.' : `${opponent ?? 'Opponent'} is thinking…`
}
