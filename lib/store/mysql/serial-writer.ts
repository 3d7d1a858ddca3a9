/**
 * One write at a time, each taking whatever has gathered: what arrives in the same turn, or while a
 * write runs, shares the next write. The group-commit queue and the ack batcher write through it.
 */

/** Starts a write of what has gathered and returns it, or undefined when nothing has; the write settles its callers and never rejects. */
export type NextWrite = () => Promise<void> | undefined

export class SerialWriter {
  readonly #next: NextWrite
  #writing: Promise<void> | undefined
  #scheduled = false

  constructor (next: NextWrite) {
    this.#next = next
  }

  /** Writes on the next turn, so that what arrives in this turn shares the write. */
  soon (): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      this.now()
    })
  }

  /** Writes at once unless a write is running; what gathers meanwhile follows as soon as it ends. */
  now (): void {
    if (this.#writing !== undefined) return
    const write = this.#next()
    if (write === undefined) return
    this.#writing = write.finally(() => {
      this.#writing = undefined
      this.now()
    })
  }

  /** Writes until nothing is left: resolves once everything gathered so far is written. */
  async flush (): Promise<void> {
    this.now()
    while (this.#writing !== undefined) await this.#writing
  }
}
