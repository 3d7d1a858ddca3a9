/**
 * A task that runs again `interval` ms after each run ends, on an unref'd timer: that timer and the
 * run under way, for the health probe and the retention job.
 */

export class PeriodicTask {
  readonly #interval: number
  readonly #task: () => Promise<void>
  #timer: NodeJS.Timeout | undefined
  /** The run the timer started, until it settles. */
  #running: Promise<void> | undefined
  #stopped = false

  /** @param interval ms between the end of a run and the next; 0: never runs @param task never rejects */
  constructor (interval: number, task: () => Promise<void>) {
    this.#interval = interval
    this.#task = task
  }

  /** Set by {@link stop}; a long run checks it to end early. */
  get stopped (): boolean {
    return this.#stopped
  }

  /** Runs the task every interval from now on. */
  start (): void {
    if (this.#interval > 0 && !this.#stopped) this.#schedule()
  }

  /** Clears the timer and waits for a run under way. */
  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#running
  }

  #schedule (): void {
    this.#timer = setTimeout(() => {
      this.#running = this.#task().finally(() => {
        this.#running = undefined
        if (!this.#stopped) this.#schedule()
      })
    }, this.#interval).unref()
  }
}
