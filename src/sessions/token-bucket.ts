/** A token bucket: `rate` tokens a second, at most `burst` saved up. */
export class TokenBucket {
  private tokens: number
  private last: number

  constructor (private readonly rate: number, private readonly burst: number, now = performance.now()) {
    this.tokens = burst
    this.last = now
  }

  /** Spends one token; false when the client is over its rate. */
  take (now = performance.now()): boolean {
    this.tokens = this.saved(now)
    this.last = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  /** Refilled to `burst`: no different from a new bucket. */
  isFull (now = performance.now()): boolean {
    return this.saved(now) >= this.burst
  }

  private saved (now: number): number {
    return Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate)
  }
}
