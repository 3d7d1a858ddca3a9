/** How a drain spreads its closes over the window, and the waits between them. */
/** When one connection is told to reconnect, and how long it is told to wait. */
export interface DrainStep {
  /** ms after the first close. */
  atMs: number
  /** The `afterMs` of its `reconnect` frame. */
  afterMs: number
}

/**
 * Spreads `count` closes evenly over `windowMs` (the first at 0, the last one slot before the end) so
 * the clients do not reconnect at the same instant, and gives each a random `afterMs` in
 * `[0, jitterMs]` on top.
 */
export function planDrain (count: number, windowMs: number, jitterMs: number, random: () => number = Math.random): DrainStep[] {
  const steps: DrainStep[] = []
  for (let i = 0; i < count; i++) {
    steps.push({ atMs: (windowMs * i) / count, afterMs: Math.floor(random() * (jitterMs + 1)) })
  }
  return steps
}

/** The waits between a drain's closes: each ends at its time, or at once when the node closes meanwhile. */
export class DrainPause {
  #wake: (() => void) | undefined

  /** Resolves at `performance.now()` time `at` (at once if it has passed), or when {@link interrupt}ed. */
  until (at: number): Promise<void> {
    const ms = at - performance.now()
    if (ms <= 0) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.#wake = undefined
        resolve()
      }
      const timer = setTimeout(done, ms).unref()
      this.#wake = done
    })
  }

  /** Ends the current wait now. */
  interrupt (): void {
    this.#wake?.()
  }
}
