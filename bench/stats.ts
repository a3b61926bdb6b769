/** Small statistics: medians of runs, and a mergeable latency histogram. */

export function median (values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (finite.length === 0) return NaN
  const mid = finite.length >> 1
  return finite.length % 2 === 1 ? finite[mid] : (finite[mid - 1] + finite[mid]) / 2
}

/**
 * Latencies in microseconds, bucketed to three significant digits (about
 * 1 % error), so histograms from several load-generator processes merge
 * exactly and cross IPC as small objects.
 */
export class Histogram {
  readonly buckets = new Map<number, number>()
  count = 0

  record (micros: number): void {
    const key = Histogram.key(micros)
    this.buckets.set(key, (this.buckets.get(key) ?? 0) + 1)
    this.count++
  }

  merge (other: SerializedHistogram): void {
    for (const [key, n] of other) {
      this.buckets.set(key, (this.buckets.get(key) ?? 0) + n)
      this.count += n
    }
  }

  toJSON (): SerializedHistogram {
    return [...this.buckets.entries()]
  }

  /** Value at quantile q (0..1), in microseconds; NaN when empty. */
  quantile (q: number): number {
    if (this.count === 0) return NaN
    const rank = Math.max(1, Math.ceil(q * this.count))
    let seen = 0
    for (const key of [...this.buckets.keys()].sort((a, b) => a - b)) {
      seen += this.buckets.get(key) as number
      if (seen >= rank) return Histogram.value(key)
    }
    return NaN
  }

  /** Bucket key: exponent and three-digit mantissa, ordered like the values. */
  static key (micros: number): number {
    const v = Math.max(1, micros)
    const e = Math.floor(Math.log10(v))
    const m = Math.floor(v / 10 ** (e - 2))
    return e * 1000 + Math.min(999, m)
  }

  /** Upper edge of a bucket. */
  static value (key: number): number {
    const e = Math.floor(key / 1000)
    return ((key % 1000) + 1) * 10 ** (e - 2)
  }
}

export type SerializedHistogram = Array<[number, number]>
