/**
 * Whether MySQL answers, as the store last saw it (every statement's outcome and the health probe set
 * it), and what a failed statement becomes for the store's callers: `WSC_ERR_UNAVAILABLE`.
 */
import { ClosedError, PayloadError, UnavailableError } from '../../errors.js'
import type { StoreStatus } from '../message-store.js'
import { describeMySqlError, isConnectionError } from './mysql-errors.js'

/** The MySQL store's reachability, for readiness and metrics. */
export class MySqlStatus {
  #status: StoreStatus = { up: false, detail: 'mysql: not started' }

  current (): StoreStatus {
    return { ...this.#status }
  }

  /** The schema is migrated: up, and the detail names the schema version. */
  started (schemaVersion: number): void {
    this.#status = { up: true, detail: `mysql: schema version ${schemaVersion}` }
  }

  /** A statement succeeded; `latencyMs` is the health probe's round trip. */
  markUp (latencyMs?: number): void {
    const detail = this.#status.up ? this.#status.detail : 'mysql: reachable'
    this.#status = latencyMs === undefined ? { ...this.#status, up: true, detail } : { up: true, detail, latencyMs }
  }

  markDown (err: unknown): void {
    this.#status = { up: false, detail: `mysql: ${describeMySqlError(err)}` }
  }

  /** Marks MySQL down when `err`, or the error it wraps, says the connection is gone. */
  markDownIfUnreachable (err: unknown): void {
    if (isConnectionError(err) || isConnectionError((err as { cause?: unknown }).cause)) this.markDown(err)
  }

  /** The error a caller gets for a failed statement: coded errors as they are, anything else `WSC_ERR_UNAVAILABLE`. */
  refusal (err: unknown): Error {
    if (err instanceof ClosedError || err instanceof PayloadError || err instanceof UnavailableError) return err
    if (isConnectionError(err)) this.markDown(err)
    return new UnavailableError(`mysql: ${describeMySqlError(err)}`, { cause: err })
  }
}
