/**
 * The MySQL retention job: deletes messages older than `retentionAge` and trims each user to the
 * `retentionCount` newest and to `maxInboxBytes` of payload, in small DELETEs that hold their locks
 * briefly; its timer, the users this node wrote to since the last pass, its cursor over all users and
 * its in-flight pass.
 */
import { setImmediate as nextTurn } from 'node:timers/promises'
import { columnText, type MySqlConnections, type Row } from './mysql-connections.js'
import type { MySqlStatus } from './mysql-status.js'
import { PeriodicTask } from './periodic-task.js'
import { Sql } from './schema.js'

export interface RetentionOptions {
  /** Messages older than this (ms) are deleted; 0 = kept forever. */
  retentionAge: number
  /** Messages kept per user; 0 = no limit. */
  retentionCount: number
  /** Payload bytes kept per user (the newest message always stays); 0 = no limit. */
  maxInboxBytes: number
  /** Pause between two passes (ms); 0 = no timer ({@link RetentionJob.runPass} still works). */
  cleanupInterval: number
  /** Rows one DELETE removes. */
  cleanupBatch: number
}

const CLEANUP_USERS_PER_PASS = 100
const CLEANUP_BATCHES_PER_PASS = 20
/** Users written to since the last pass that the next one trims; past this, the sweep over all users catches up. */
const WRITTEN_USERS_TRACKED = 10_000

export class RetentionJob {
  /** Messages the job deleted. */
  deleted = 0
  readonly #connections: MySqlConnections
  readonly #status: MySqlStatus
  readonly #options: RetentionOptions
  readonly #timer: PeriodicTask
  /** The last user the sweep reached; the next pass continues after it. */
  #cursor = ''
  /** Users this node wrote to since the last pass: only a write can take a user past its bounds. */
  #written = new Set<string>()

  constructor (connections: MySqlConnections, status: MySqlStatus, options: RetentionOptions) {
    this.#connections = connections
    this.#status = status
    this.#options = options
    this.#timer = new PeriodicTask(options.cleanupInterval, async () => {
      await this.runPass().catch((err: unknown) => this.#status.markDownIfUnreachable(err))
    })
  }

  /** Starts the periodic passes when there is an interval and something to delete. */
  start (): void {
    if (this.#options.retentionAge > 0 || this.#options.retentionCount > 0 || this.#options.maxInboxBytes > 0) this.#timer.start()
  }

  /** Notes a committed write to the user: the next pass trims the user (at most {@link WRITTEN_USERS_TRACKED} are noted). */
  noteWritten (userId: string): void {
    if (this.#written.size < WRITTEN_USERS_TRACKED) this.#written.add(userId)
  }

  /**
   * One pass: deletes messages older than `retentionAge`, then trims to their `retentionCount` newest
   * messages and `maxInboxBytes` of payload every user this node wrote to since the last pass, and up
   * to 100 others (a sweep over all users, continued by the next pass: users other nodes or an earlier
   * process wrote to). A client publishing to many user ids thus cannot outrun the job. Each DELETE
   * removes at most `cleanupBatch` rows, reads committed rows only and takes its own pooled connection,
   * so sends are never held behind a long statement. Returns the rows deleted.
   */
  async runPass (): Promise<number> {
    const { retentionAge, retentionCount, maxInboxBytes, cleanupBatch } = this.#options
    let deleted = 0
    if (retentionAge > 0) {
      const cutoff = Date.now() - retentionAge
      for (let i = 0; i < CLEANUP_BATCHES_PER_PASS && !this.#timer.stopped; i++) {
        const removed = await this.#delete(Sql.deleteOlderThan, [cutoff, cleanupBatch])
        deleted += removed
        if (removed < cleanupBatch) break
      }
    }
    if ((retentionCount > 0 || maxInboxBytes > 0) && !this.#timer.stopped) {
      // A byte bound concerns every user with messages; a count bound only those numbered past it.
      const minSeq = maxInboxBytes > 0 ? 0 : retentionCount
      const written = this.#written
      this.#written = new Set()
      for (const userId of written) {
        if (this.#timer.stopped) break
        deleted += await this.#trimToBounds(userId)
      }
      const rows = await this.#connections.query<Row[]>(Sql.inboxesOver, [this.#cursor, minSeq, CLEANUP_USERS_PER_PASS])
      for (const row of rows) {
        if (this.#timer.stopped) break
        const userId = columnText(row.user_id)
        if (!written.has(userId)) deleted += await this.#trimToBounds(userId)
        this.#cursor = userId
      }
      if (rows.length < CLEANUP_USERS_PER_PASS) this.#cursor = ''
    }
    this.deleted += deleted
    return deleted
  }

  /** Stops the timer, ends a running pass after its current DELETE, and waits for it. */
  async stop (): Promise<void> {
    await this.#timer.stop()
  }

  /** Deletes what the user holds beyond `retentionCount` messages and `maxInboxBytes` of payload. */
  async #trimToBounds (userId: string): Promise<number> {
    const { retentionCount, maxInboxBytes } = this.#options
    const [byCount] = retentionCount > 0 ? await this.#connections.query<Row[]>(Sql.countBoundary, [userId, retentionCount]) : []
    const [byBytes] = maxInboxBytes > 0 ? await this.#connections.query<Row[]>(Sql.bytesBoundary, [userId, maxInboxBytes]) : []
    const upTo = Math.max(Number(byCount?.seq ?? 0), Number(byBytes?.seq ?? 0))
    return upTo > 0 ? await this.#trimUser(userId, upTo) : 0
  }

  /** Deletes the user's messages up to `upTo`, a batch at a time. */
  async #trimUser (userId: string, upTo: number): Promise<number> {
    let deleted = 0
    for (let i = 0; i < CLEANUP_BATCHES_PER_PASS && !this.#timer.stopped; i++) {
      const removed = await this.#delete(Sql.deleteUpTo, [userId, upTo, this.#options.cleanupBatch])
      deleted += removed
      if (removed < this.#options.cleanupBatch) break
    }
    return deleted
  }

  /** One small DELETE on its own connection, reading committed rows only (no gap locks in front of inserts). */
  async #delete (sql: string, values: unknown[]): Promise<number> {
    await nextTurn()
    try {
      return await this.#connections.withConnection(async (conn) => {
        await this.#connections.run(conn, Sql.readCommittedNext)
        return (await this.#connections.run(conn, sql, values)).affectedRows
      })
    } catch (err) {
      throw this.#status.refusal(err)
    }
  }
}
