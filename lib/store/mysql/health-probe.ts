/**
 * The MySQL health probe: a `SELECT 1` every `probeInterval` (and whenever {@link HealthProbe.probe}
 * is called), so the status that readiness reads stays current while no other statement runs.
 */
import type { StoreStatus } from '../message-store.js'
import type { MySqlConnections, Row } from './mysql-connections.js'
import type { MySqlStatus } from './mysql-status.js'
import { PeriodicTask } from './periodic-task.js'
import { Sql } from './schema.js'

export class HealthProbe {
  readonly #connections: MySqlConnections
  readonly #status: MySqlStatus
  readonly #timer: PeriodicTask

  /** @param interval ms between two probes; 0: no timer ({@link probe} still works) */
  constructor (connections: MySqlConnections, status: MySqlStatus, interval: number) {
    this.#connections = connections
    this.#status = status
    this.#timer = new PeriodicTask(interval, async () => { await this.probe() })
  }

  /** Starts the periodic probe. */
  start (): void {
    this.#timer.start()
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
    await this.#timer.stop()
  }
}
