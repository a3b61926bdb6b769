/**
 * One endpoint's rate limits, per user rather than per connection: a user's
 * bucket outlives its connection until it would be full again, so a client
 * cannot refill it by reconnecting (protocol/PROTOCOL.md §7).
 */
import { TokenBucket } from './token-bucket.js'

export class RateBuckets {
  private readonly buckets = new Map<string, TokenBucket>()

  constructor (private readonly rate: number, private readonly burst: number) {}

  /** Spends one of `user`'s tokens; false when the user is over its rate. */
  take (user: string, now = performance.now()): boolean {
    let bucket = this.buckets.get(user)
    if (bucket === undefined) {
      bucket = new TokenBucket(this.rate, this.burst, now)
      this.buckets.set(user, bucket)
    }
    return bucket.take(now)
  }

  /** Forgets the buckets that are full again: a new one would be the same. */
  sweep (now = performance.now()): void {
    for (const [user, bucket] of this.buckets) {
      if (bucket.isFull(now)) this.buckets.delete(user)
    }
  }

  get size (): number {
    return this.buckets.size
  }
}
