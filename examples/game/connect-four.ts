/** Connect Four rules, with no I/O: a 7×6 board, gravity, and four in a row. */

export const COLUMNS = 7
export const ROWS = 6

export type Disc = 'red' | 'yellow'
/** `cells[row][column]`, row 0 at the top. */
export type Cells = Array<Array<Disc | null>>
export type Cell = [row: number, column: number]

export type DropResult =
  | { ok: true, row: number }
  | { ok: false, problem: string }

const DIRECTIONS: Cell[] = [[0, 1], [1, 0], [1, 1], [1, -1]]

export class Board {
  readonly cells: Cells = Array.from({ length: ROWS }, () => Array<Disc | null>(COLUMNS).fill(null))
  private discs = 0

  /** A board with these cells (a stored match); a disc count that does not fit a real game is not checked: the store is trusted. */
  static from (cells: Cells): Board {
    const board = new Board()
    for (let row = 0; row < ROWS; row++) {
      for (let column = 0; column < COLUMNS; column++) {
        const disc = cells[row]?.[column] ?? null
        board.cells[row][column] = disc
        if (disc !== null) board.discs++
      }
    }
    return board
  }

  /** Drops a disc into `column` (any value: a client sent it). */
  drop (column: unknown, disc: Disc): DropResult {
    if (typeof column !== 'number' || !Number.isInteger(column) || column < 0 || column >= COLUMNS) {
      return { ok: false, problem: `column must be an integer from 0 to ${COLUMNS - 1}` }
    }
    for (let row = ROWS - 1; row >= 0; row--) {
      if (this.cells[row][column] === null) {
        this.cells[row][column] = disc
        this.discs++
        return { ok: true, row }
      }
    }
    return { ok: false, problem: 'that column is full' }
  }

  /** The four-or-more line through (row, column), if its disc made one. */
  lineThrough (row: number, column: number): Cell[] | undefined {
    const disc = this.cells[row][column]
    if (disc === null) return undefined
    for (const [dr, dc] of DIRECTIONS) {
      const line: Cell[] = [[row, column]]
      for (const sign of [1, -1]) {
        for (let r = row + sign * dr, c = column + sign * dc; this.cells[r]?.[c] === disc; r += sign * dr, c += sign * dc) {
          line.push([r, c])
        }
      }
      if (line.length >= 4) return line.sort((a, b) => a[0] - b[0] || a[1] - b[1])
    }
    return undefined
  }

  /** Discs on the board: the number of moves played. */
  get placed (): number {
    return this.discs
  }

  get isFull (): boolean {
    return this.discs === ROWS * COLUMNS
  }
}
