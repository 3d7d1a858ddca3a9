/** Event names mapped to the tuple of arguments their listeners get. */
export type EventMap<E> = { [K in keyof E]: unknown[] }

type Listener = (...args: never[]) => void

/**
 * A minimal typed event emitter for browsers and Node alike. A listener that throws never reaches the
 * emitter's caller: the error goes to `onListenerError`.
 */
export class TypedEvents<E extends EventMap<E>> {
  readonly #listeners = new Map<keyof E, Set<Listener>>()
  readonly #onListenerError: (err: unknown) => void

  constructor (onListenerError: (err: unknown) => void) {
    this.#onListenerError = onListenerError
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E> (type: K, listener: (...args: E[K]) => void): () => void {
    let set = this.#listeners.get(type)
    if (set === undefined) this.#listeners.set(type, set = new Set())
    set.add(listener as unknown as Listener)
    return () => this.off(type, listener)
  }

  off<K extends keyof E> (type: K, listener: (...args: E[K]) => void): void {
    this.#listeners.get(type)?.delete(listener as unknown as Listener)
  }

  /** Whether anyone listens to `type`. */
  has (type: keyof E): boolean {
    return (this.#listeners.get(type)?.size ?? 0) > 0
  }

  emit<K extends keyof E> (type: K, ...args: E[K]): void {
    const set = this.#listeners.get(type)
    if (set === undefined) return
    for (const listener of [...set]) {
      try {
        (listener as unknown as (...args: E[K]) => void)(...args)
      } catch (err) {
        this.#onListenerError(err)
      }
    }
  }
}
