/**
 * The MySQL store's way to the server: a pooled connection for each piece of work (destroyed, not
 * reused, once it broke), each statement under a client-side timeout, and how a row's columns decode.
 */
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise'
import { isConnectionError } from './mysql-errors.js'
import type { MySqlStatus } from './mysql-status.js'

export type Row = RowDataPacket & Record<string, unknown>

/** A VARBINARY or text column as a string (mysql2 returns binary columns as Buffers). */
export const columnText = (value: unknown): string => Buffer.isBuffer(value) ? value.toString('utf8') : String(value)

/** Statements on a mysql2 promise pool that the caller owns. */
export class MySqlConnections {
  readonly #pool: Pool
  readonly #queryTimeout: number
  readonly #status: MySqlStatus

  /** @param queryTimeout client-side timeout of one statement (ms) @param status updated by {@link query} */
  constructor (pool: Pool, queryTimeout: number, status: MySqlStatus) {
    this.#pool = pool
    this.#queryTimeout = queryTimeout
    this.#status = status
  }

  /**
   * Runs `fn` on a pooled connection. One that failed at the network level, timed out, or that `fn`
   * discards is destroyed, not reused.
   */
  async withConnection<T> (fn: (conn: PoolConnection, discard: () => void) => Promise<T>): Promise<T> {
    const conn = await this.#pool.getConnection()
    let broken = false
    try {
      return await fn(conn, () => { broken = true })
    } catch (err) {
      broken ||= isConnectionError(err)
      throw err
    } finally {
      if (broken) conn.destroy()
      else conn.release()
    }
  }

  /**
   * One statement with a client-side timeout. Not mysql2's `timeout` option: its timer outlives a
   * connection that dies mid-query and keeps the process alive.
   */
  async run<T extends Row[] | ResultSetHeader = ResultSetHeader> (conn: PoolConnection, sql: string, values?: unknown[]): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        reject(Object.assign(new Error(`no answer within ${this.#queryTimeout} ms`), { code: 'PROTOCOL_SEQUENCE_TIMEOUT', fatal: true }))
      }, this.#queryTimeout).unref()
    })
    try {
      const [result] = await Promise.race([conn.query<T>(sql, values), timedOut])
      return result
    } finally {
      clearTimeout(timer)
    }
  }

  /** One statement on any pooled connection; it marks MySQL up, and a failure becomes `WSC_ERR_UNAVAILABLE`. */
  async query<T extends Row[] | ResultSetHeader> (sql: string, values: unknown[]): Promise<T> {
    try {
      const result = await this.withConnection((conn) => this.run<T>(conn, sql, values))
      this.#status.markUp()
      return result
    } catch (err) {
      throw this.#status.refusal(err)
    }
  }
}
