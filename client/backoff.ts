/**
 * "Full jitter" backoff: a uniformly random delay between 0 and `min(maxMs, baseMs * 2^attempt)`, so
 * clients that lost the same node do not come back in waves (attempt 0 is the first retry).
 */
export function fullJitterDelay (attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30))
  return Math.floor(random() * cap)
}
