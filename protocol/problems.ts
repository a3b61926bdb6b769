/**
 * What was wrong with one link frame, for both ends and both encodings.
 * The first MAX_DETAILED_PROBLEMS problems are described one by one; past
 * that they are only counted per kind, so a hostile frame of a million tiny
 * bad items costs a few counters, not a million messages.
 */

export interface Problem<K extends string> {
  kind: K
  message: string
  /** How many problems this entry stands for: more than 1 only for the summary of a kind past MAX_DETAILED_PROBLEMS. */
  count?: number
}

export const MAX_DETAILED_PROBLEMS = 100

export class Problems<K extends string> {
  private readonly list: Array<Problem<K>> = []
  private readonly beyond = new Map<K, number>()

  /** `message` may be a function, so that it is only built for the problems described; `count` > 1: a summary from a nested decode. */
  add (kind: K, message: string | (() => string), count = 1): void {
    if (count === 1 && this.list.length < MAX_DETAILED_PROBLEMS) this.list.push({ kind, message: typeof message === 'string' ? message : message() })
    else this.beyond.set(kind, (this.beyond.get(kind) ?? 0) + count)
  }

  done (): Array<Problem<K>> {
    for (const [kind, count] of this.beyond) this.list.push({ kind, message: `${count} more ${kind} problems in this frame`, count })
    return this.list
  }
}
