/**
 * Where the game service keeps each match between moves. In memory by
 * default; a `FileStore` directory shared by several instances lets one of
 * them take over a match another held when that one dies (docs/pools.md,
 * "What a backend must persist").
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Cells, Disc } from './connect-four.js'
import type { GameResult } from './messages.js'

/** A match as stored: enough to rebuild it on any instance. */
export interface SavedMatch {
  id: string
  players: Record<Disc, string | null>
  cells: Cells
  turn: Disc
  result?: GameResult
}

export interface MatchStore {
  load (id: string): Promise<SavedMatch | undefined>
  /** Resolves once the match is stored: the service acknowledges the move only then. */
  save (match: SavedMatch): Promise<void>
  remove (id: string): Promise<void>
}

/** One process's matches, gone with it. */
export class MemoryStore implements MatchStore {
  private readonly saved = new Map<string, string>()

  async load (id: string): Promise<SavedMatch | undefined> {
    const text = this.saved.get(id)
    return text === undefined ? undefined : JSON.parse(text) as SavedMatch
  }

  async save (match: SavedMatch): Promise<void> {
    this.saved.set(match.id, JSON.stringify(match))
  }

  async remove (id: string): Promise<void> {
    this.saved.delete(id)
  }
}

/**
 * A JSON file per match in `dir`, named by a hash of the match id (which a
 * client chose: it never becomes a path). Each write goes to a temporary
 * file renamed over the old one, so a reader (another instance) never sees
 * half a match, even if the writer dies mid-write.
 */
export class FileStore implements MatchStore {
  private ready?: Promise<unknown>

  constructor (readonly dir: string) {}

  async load (id: string): Promise<SavedMatch | undefined> {
    try {
      const saved = JSON.parse(await readFile(this.file(id), 'utf8')) as SavedMatch
      return saved.id === id ? saved : undefined
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  async save (match: SavedMatch): Promise<void> {
    this.ready ??= mkdir(this.dir, { recursive: true })
    await this.ready
    const temporary = join(this.dir, `.${randomBytes(8).toString('hex')}.tmp`)
    await writeFile(temporary, JSON.stringify(match))
    await rename(temporary, this.file(match.id))
  }

  async remove (id: string): Promise<void> {
    await rm(this.file(id), { force: true })
  }

  private file (id: string): string {
    return join(this.dir, `${createHash('sha256').update(id).digest('hex')}.json`)
  }
}
