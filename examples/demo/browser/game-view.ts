/** The game panel: the Connect Four board (click a column to drop a disc) and what is going on. */
import type { GameState } from '../../game/messages.js'
import { byId, el } from './dom.js'

export interface GameActions {
  move (column: number): void
  resign (): void
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

  constructor (actions: GameActions) {
    for (let column = 0; column < COLUMNS; column++) {
      const cells = Array.from({ length: ROWS }, (_, row) => el('span', { class: 'cell', 'data-row': String(row), 'data-col': String(column) }))
      const button = el('button', { type: 'button', class: 'column', 'data-col': String(column), 'aria-label': `drop in column ${column + 1}` }, ...cells)
      button.addEventListener('click', () => actions.move(column))
      this.board.append(button)
    }
    this.resign.addEventListener('click', () => actions.resign())
    byId('leave').addEventListener('click', () => actions.leave())
  }

  open (matchId: string): void {
    this.panel.hidden = false
    this.panel.dataset.status = 'connecting'
    this.title.textContent = `Match ${matchId}`
    this.info.textContent = 'Joining the match…'
  }

  close (): void {
    this.panel.hidden = true
  }

  show (state: GameState): void {
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
    this.panel.dataset.result = state.result ? (state.result.winner === null ? 'draw' : state.result.winner === state.you ? 'win' : 'loss') : ''
    this.info.textContent = describe(state, opponent)
  }

  error (message: string): void {
    this.info.textContent = message
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
  if (opponent && state.away.includes(opponent)) {
    return `${opponent} dropped out; they lose unless they are back within ${Math.round(state.graceMs / 1000)} s.`
  }
  return state.turn === state.you ? 'Your turn: click a column.' : `${opponent ?? 'Opponent'} is thinking…`
}
