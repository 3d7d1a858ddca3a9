/** Window in which refusals count towards closing a connection for sustained abuse. */
export const STRIKE_WINDOW_MS = 10_000

/**
 * Token bucket per connection: `rate` frames per second, `burst` at once. Counts refusals
 * ("strikes") in a window so sustained abuse can be told from a short burst.
 */
export class RateLimiter {
  readonly #rate: number
  readonly #burst: number
  #tokens: number
  #refilledAt: number
  #strikes = 0
  #strikeWindowStart = 0

  /** @param rate frames per second; 0 disables the limit */
  constructor (rate: number, burst: number, now: number) {
    this.#rate = rate
    this.#burst = burst
    this.#tokens = burst
    this.#refilledAt = now
  }

  /** Takes a token; false when the frame must be refused. */
  take (now: number): boolean {
    if (this.#rate === 0) return true
    const elapsed = now - this.#refilledAt
    if (elapsed > 0) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed * this.#rate) / 1000)
      this.#refilledAt = now
    }
    if (this.#tokens >= 1) {
      this.#tokens -= 1
      return true
    }
    return false
  }

  /** Records a refusal; returns the refusals in the current window, this one included. */
  strike (now: number): number {
    if (now - this.#strikeWindowStart > STRIKE_WINDOW_MS) {
      this.#strikeWindowStart = now
      this.#strikes = 0
    }
    return ++this.#strikes
  }
}
