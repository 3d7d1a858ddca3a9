/**
 * The MySQL health probe: a `SELECT 1` that the readiness check runs on demand and a timer runs every
 * `probeInterval`, so the store's status stays current while no statement runs; its timer and its
 * in-flight probe.
 */
import type { StoreStatus } from '../message-store.js'
import type { MySqlConnections, Row } from './mysql-connections.js'
import type { MySqlStatus } from './mysql-status.js'
import { Sql } from './schema.js'

export class HealthProbe {
  readonly #connections: MySqlConnections
  readonly #status: MySqlStatus
  readonly #interval: number
  #timer: NodeJS.Timeout | undefined
  /** The probe the timer started, until it settles. */
  #running: Promise<unknown> | undefined
  #stopped = false

  /** @param interval ms between two probes; 0: no timer ({@link probe} still works) */
  constructor (connections: MySqlConnections, status: MySqlStatus, interval: number) {
    this.#connections = connections
    this.#status = status
    this.#interval = interval
  }

  /** Starts the periodic probe. */
  start (): void {
    if (this.#interval > 0) this.#schedule()
  }

  /** Runs `SELECT 1` and updates the status, with the round trip as its latency. */
  async probe (): Promise<StoreStatus> {
    const started = performance.now()
    try {
      await this.#connections.withConnection((conn) => this.#connections.run<Row[]>(conn, Sql.probe))
      this.#status.markUp(Math.round((performance.now() - started) * 100) / 100)
    } catch (err) {
      this.#status.markDown(err)
    }
    return this.#status.current()
  }

  /** Stops the timer and waits for a probe it started. */
  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#running
  }

  #schedule (): void {
    this.#timer = setTimeout(() => {
      this.#running = this.probe().finally(() => {
        this.#running = undefined
        if (!this.#stopped) this.#schedule()
      })
    }, this.#interval).unref()
  }
}
