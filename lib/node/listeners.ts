/**
 * The node's events (`connect`, `disconnect`, `message`) for the app's listeners. Each listener runs
 * isolated: one that throws or whose promise rejects is logged and changes nothing else — the other
 * listeners still run, and the connection or publish that caused the event goes on.
 */
import type { Logger } from '../logger.js'

type Listener<Args extends unknown[]> = (...args: Args) => unknown

export class IsolatedEvents<Events extends { [K in keyof Events]: unknown[] }> {
  readonly #listeners = new Map<keyof Events, Array<{ listener: Listener<any>, once: boolean }>>()
  readonly #log: Logger

  constructor (log: Logger) {
    this.#log = log
  }

  on<K extends keyof Events> (event: K, listener: Listener<Events[K]>): void {
    this.#add(event, listener, false)
  }

  once<K extends keyof Events> (event: K, listener: Listener<Events[K]>): void {
    this.#add(event, listener, true)
  }

  off<K extends keyof Events> (event: K, listener: Listener<Events[K]>): void {
    const list = this.#listeners.get(event)
    const at = list?.findIndex((entry) => entry.listener === listener) ?? -1
    if (at >= 0) list?.splice(at, 1)
  }

  /** Calls every listener of `event`; never throws. */
  emit<K extends keyof Events> (event: K, ...args: Events[K]): void {
    const list = this.#listeners.get(event)
    if (list === undefined || list.length === 0) return
    for (const entry of [...list]) {
      if (entry.once) this.off(event, entry.listener)
      try {
        const result = entry.listener(...args)
        if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
          (result as Promise<unknown>).then(undefined, (err: unknown) => this.#failed(event, err))
        }
      } catch (err) {
        this.#failed(event, err)
      }
    }
  }

  #add<K extends keyof Events> (event: K, listener: Listener<Events[K]>, once: boolean): void {
    let list = this.#listeners.get(event)
    if (list === undefined) this.#listeners.set(event, list = [])
    list.push({ listener, once })
  }

  #failed (event: keyof Events, err: unknown): void {
    this.#log.error({ err, event: String(event) }, `a '${String(event)}' listener failed; the node goes on`)
  }
}
