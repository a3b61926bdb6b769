/** Opening many sockets `concurrency` at a time, counting what failed. */

export interface LaneResult {
  failed: number
  /** Each distinct failure message, with how often it came. */
  errors: Map<string, number>
}

/** Runs `each(i)` for every i below `count`, `concurrency` at a time; a throw counts as a failure under `describe`'s message. */
export async function inLanes (count: number, concurrency: number, each: (i: number) => Promise<void>, describe = (err: Error, _i: number): string => err.message): Promise<LaneResult> {
  let next = 0
  let failed = 0
  const errors = new Map<string, number>()
  const lane = async (): Promise<void> => {
    while (next < count) {
      const i = next++
      try {
        await each(i)
      } catch (err) {
        failed++
        const message = describe(err as Error, i)
        errors.set(message, (errors.get(message) ?? 0) + 1)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane))
  return { failed, errors }
}
