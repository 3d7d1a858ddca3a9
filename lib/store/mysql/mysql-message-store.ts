import { setImmediate as nextTurn } from 'node:timers/promises'
import type { Pool, PoolConnection } from 'mysql2/promise'
import { ClosedError, PayloadError, UnavailableError } from '../../errors.js'
import type { MessageStore, StoredMessage, StoreStatus } from '../message-store.js'
import { migrate, Sql, type MigrationResult } from './schema.js'
import type { Message } from '../../protocol.js'
import { columnText, MySqlConnections, type Row } from './mysql-connections.js'
import { isConflict, isConnectionError } from './mysql-errors.js'
import { MySqlStatus } from './mysql-status.js'
import { HealthProbe } from './health-probe.js'
import { RetentionJob } from './retention-job.js'
import { AckBatcher } from './ack-batcher.js'

/** A committed message and the user it belongs to. */
export interface CommittedMessage {
  userId: string
  message: StoredMessage
}

export interface MySqlMessageStoreOptions {
  /** Most messages one multi-row INSERT writes (`store.batch_size`). Default 500. */
  batchSize?: number
  /** Appends waiting for a batch beyond which new ones are refused with `WSC_ERR_UNAVAILABLE`. Default 20 × batchSize. */
  maxQueued?: number
  /** Messages older than this (ms) are deleted by the cleanup job; 0 = kept forever (`store.retention_age`). */
  retentionAge?: number
  /** Messages kept per user; 0 = no limit (`store.retention_count`). */
  retentionCount?: number
  /** Pause between two cleanup passes (ms); 0 = no cleanup timer ({@link MySqlMessageStore.runRetention} still works). */
  cleanupInterval?: number
  /** Rows one cleanup DELETE removes; small so it holds its locks briefly. Default 500. */
  cleanupBatch?: number
  /** How often the health probe runs (ms); 0 = no probe. Default 5000. */
  probeInterval?: number
  /** Client-side timeout of one statement (ms). Default 10000. */
  queryTimeout?: number
  /**
   * Lowest seq each user's next message may take beyond MySQL's own counter, read before each batch
   * (the Redis window's latest seq, so a MySQL restored from an older backup never reuses a seq).
   */
  seqFloors?: (userIds: readonly string[]) => Promise<ReadonlyMap<string, number>>
  /** Runs after COMMIT and before the batch's appends resolve; a rejection rejects them. */
  afterCommit?: (committed: readonly CommittedMessage[]) => Promise<void>
}

/** Counters of the write path, for metrics and the group-commit test. */
export interface MySqlStoreStats {
  /** Multi-row INSERTs into wsc_messages that committed. */
  batches: number
  /** Messages they committed. */
  messages: number
  /** Transactions run again after a deadlock, a lost connection or a duplicate id. */
  retries: number
  /** Messages the retention job deleted. */
  deleted: number
}

interface PendingAppend {
  userId: string
  message: Omit<Message, 'seq'>
  bytes: number
  resolve: (stored: StoredMessage) => void
  reject: (err: Error) => void
}

/** Statement bytes a message row adds besides its payload and user ids. */
const ROW_OVERHEAD = 128
/** Unescaped bytes per INSERT: short lock times, and below max_allowed_packet even if escaping doubles them. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024
/** Characters mysql2 escapes with a backslash in a string literal. */
// eslint-disable-next-line no-control-regex -- these control characters are exactly what gets escaped
const ESCAPED = /[\0\b\t\n\r\x1a"'\\]/g
const MAX_ATTEMPTS = 5

/**
 * User messages in MySQL: per-user seq from the `wsc_inboxes` counter row (locked until COMMIT, so a
 * user's messages commit in seq order and a reader never sees a gap that fills later), group commit
 * (one transaction at a time; the appends that arrive while it runs share the next multi-row INSERT),
 * retention, and a health probe. An append resolves only after COMMIT; when MySQL cannot be reached
 * it rejects with `WSC_ERR_UNAVAILABLE` and the mysql2 pool reconnects by itself.
 */
export class MySqlMessageStore implements MessageStore {
  readonly durability = 'mysql' as const
  readonly #counts = { batches: 0, messages: 0, retries: 0 }
  readonly #pool: Pool
  readonly #batchSize: number
  readonly #maxQueued: number
  readonly #connections: MySqlConnections
  readonly #status = new MySqlStatus()
  readonly #seqFloors: MySqlMessageStoreOptions['seqFloors']
  readonly #afterCommit: MySqlMessageStoreOptions['afterCommit']
  /** Largest message row the server accepts, from max_allowed_packet (read at start). */
  #maxMessageBytes = MAX_BATCH_BYTES
  #maxBatchBytes = MAX_BATCH_BYTES
  #queue: PendingAppend[] = []
  /** One batch is written at a time: a user's appends commit in the order they were called. */
  #writing = false
  #flushScheduled = false
  /** Every write under way; close() waits for them. */
  readonly #work = new Set<Promise<unknown>>()
  readonly #acks: AckBatcher
  readonly #probe: HealthProbe
  readonly #retention: RetentionJob
  #started = false
  #closing = false
  #closed: Promise<void> | undefined

  /** @param pool a mysql2 promise pool; the caller owns it and ends it after {@link close}. */
  constructor (pool: Pool, options: MySqlMessageStoreOptions = {}) {
    this.#pool = pool
    this.#batchSize = options.batchSize ?? 500
    this.#maxQueued = options.maxQueued ?? 20 * this.#batchSize
    this.#connections = new MySqlConnections(pool, options.queryTimeout ?? 10_000, this.#status)
    this.#acks = new AckBatcher(this.#connections)
    this.#probe = new HealthProbe(this.#connections, this.#status, options.probeInterval ?? 5000)
    this.#retention = new RetentionJob(this.#connections, this.#status, {
      retentionAge: options.retentionAge ?? 0,
      retentionCount: options.retentionCount ?? 0,
      cleanupInterval: options.cleanupInterval ?? 0,
      cleanupBatch: options.cleanupBatch ?? 500
    })
    this.#seqFloors = options.seqFloors
    this.#afterCommit = options.afterCommit
  }

  /** Migrates the schema, reads the server's packet limit, then starts the probe and the cleanup job. */
  async start (): Promise<MigrationResult> {
    const migration = await migrate(this.#pool)
    const [[packet]] = await this.#pool.query<Row[]>(Sql.maxAllowedPacket)
    const maxPacket = Number(packet?.bytes ?? 0)
    if (maxPacket > 0) {
      this.#maxMessageBytes = Math.max(1024, maxPacket - 4 * ROW_OVERHEAD)
      this.#maxBatchBytes = Math.min(MAX_BATCH_BYTES, Math.floor(maxPacket / 2))
    }
    this.#status.started(migration.version)
    this.#started = true
    this.#probe.start()
    this.#retention.start()
    return migration
  }

  /** Counters of the write path and the retention job. */
  get stats (): MySqlStoreStats {
    return { ...this.#counts, deleted: this.#retention.deleted }
  }

  status (): StoreStatus {
    return this.#status.current()
  }

  // ---- appends and group commit ----

  async append (userId: string, message: Omit<Message, 'seq'>): Promise<StoredMessage> {
    if (this.#closing) throw new ClosedError('the message store is closed')
    if (!this.#started) throw new ClosedError('the message store has not started')
    let bytes = Buffer.byteLength(message.dataJson) + 3 * (userId.length + (message.from?.length ?? 0)) + ROW_OVERHEAD
    // Escaping at most doubles the payload: count the escapes only when that could pass the limit.
    if (2 * bytes > this.#maxMessageBytes) bytes += message.dataJson.match(ESCAPED)?.length ?? 0
    if (bytes > this.#maxMessageBytes) {
      throw new PayloadError(`a message of ${bytes} bytes exceeds what MySQL accepts (max_allowed_packet allows ${this.#maxMessageBytes})`)
    }
    if (this.#queue.length >= this.#maxQueued) throw new UnavailableError(`mysql: ${this.#queue.length} messages are waiting to be written; retry`)
    return new Promise((resolve, reject) => {
      this.#queue.push({ userId, message, bytes, resolve, reject })
      if (this.#queue.length >= this.#batchSize) this.#drain()
      else this.#scheduleFlush()
    })
  }

  #scheduleFlush (): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    setImmediate(() => {
      this.#flushScheduled = false
      this.#drain()
    })
  }

  /** Starts the next batch unless one is being written; appends arriving meanwhile share the next. */
  #drain (): void {
    if (this.#writing || this.#queue.length === 0) return
    this.#writing = true
    this.#track(this.#write(this.#takeBatch()).finally(() => {
      this.#writing = false
      this.#drain()
    }))
  }

  #takeBatch (): PendingAppend[] {
    let bytes = 0
    let count = 0
    for (const pending of this.#queue) {
      if (count > 0 && (count >= this.#batchSize || bytes + pending.bytes > this.#maxBatchBytes)) break
      bytes += pending.bytes
      count++
    }
    return this.#queue.splice(0, count)
  }

  #track<T> (work: Promise<T>): Promise<T> {
    this.#work.add(work)
    work.then(() => this.#work.delete(work), () => this.#work.delete(work))
    return work
  }

  /**
   * Writes one batch in one transaction, retrying after a deadlock or a lost connection. Before a
   * retry it looks up which messages are already stored (the COMMIT may have landed), so a retry
   * never stores a message twice.
   */
  async #write (batch: PendingAppend[]): Promise<void> {
    const committed: Array<{ pending: PendingAppend, stored: StoredMessage }> = []
    let pending = this.#dedupe(batch)
    let failure: unknown
    for (let attempt = 0; pending.length > 0; attempt++) {
      try {
        if (attempt > 0) pending = await this.#takeStored(pending, committed)
        if (pending.length === 0) break
        const floors = this.#seqFloors === undefined ? undefined : await this.#seqFloors([...new Set(pending.map((p) => p.userId))])
        committed.push(...await this.#insert(pending, floors, attempt > 0))
        pending = []
      } catch (err) {
        if (attempt + 1 < MAX_ATTEMPTS && this.#isRetryable(err, attempt)) {
          this.#counts.retries++
          continue
        }
        failure = err
        break
      }
    }
    if (committed.length > 0 && this.#afterCommit !== undefined) {
      try {
        await this.#afterCommit(committed.map(({ pending, stored }) => ({ userId: pending.userId, message: stored })))
      } catch (err) {
        const refused = err instanceof Error ? err : new UnavailableError(String(err))
        for (const { pending } of committed) pending.reject(refused)
        committed.length = 0
      }
    }
    for (const { pending, stored } of committed) pending.resolve(stored)
    if (failure !== undefined) {
      const refused = this.#status.refusal(failure)
      for (const p of pending) p.reject(refused)
    }
  }

  /** One row per message id: a second append of an id in the same batch settles with the first. */
  #dedupe (batch: PendingAppend[]): PendingAppend[] {
    const unique = new Map<string, PendingAppend>()
    for (const p of batch) {
      const first = unique.get(p.message.id)
      if (first === undefined) {
        unique.set(p.message.id, p)
      } else if (first.userId !== p.userId) {
        p.reject(new PayloadError(`message id ${p.message.id} is already used for another user`))
      } else {
        const { resolve, reject } = first
        first.resolve = (stored) => { resolve(stored); p.resolve(stored) }
        first.reject = (err) => { reject(err); p.reject(err) }
      }
    }
    return unique.size === batch.length ? batch : [...unique.values()]
  }

  #isRetryable (err: unknown, attempt: number): boolean {
    // One retry on a fresh connection: a pooled connection may have died while idle.
    return isConflict(err) || (attempt === 0 && isConnectionError(err))
  }

  /** Resolves the appends whose message id is already stored (an earlier attempt committed); returns the rest. */
  async #takeStored (pending: PendingAppend[], committed: Array<{ pending: PendingAppend, stored: StoredMessage }>): Promise<PendingAppend[]> {
    const rows = await this.#connections.withConnection((conn) => this.#connections.run<Row[]>(conn, Sql.findMessages(pending.length), pending.map((p) => p.message.id)))
    const stored = new Map(rows.map((row) => [String(row.id), { userId: columnText(row.user_id), seq: Number(row.seq) }]))
    const rest: PendingAppend[] = []
    for (const p of pending) {
      const found = stored.get(p.message.id)
      if (found === undefined) rest.push(p)
      else if (found.userId === p.userId) committed.push({ pending: p, stored: { ...p.message, seq: found.seq } })
      else p.reject(new PayloadError(`message id ${p.message.id} is already stored for another user`))
    }
    return rest
  }

  /**
   * One transaction: lock the users' counters, number the messages, insert them all, commit. On a
   * retry the stored messages' highest seq is checked for every user, not only for users without a
   * counter row, so a counter that fell behind its messages (restored separately) cannot fail twice.
   */
  async #insert (pending: PendingAppend[], floors: ReadonlyMap<string, number> | undefined, recheck: boolean): Promise<Array<{ pending: PendingAppend, stored: StoredMessage }>> {
    const users = [...new Set(pending.map((p) => p.userId))]
    return this.#connections.withConnection(async (conn, discard) => {
      await this.#connections.run(conn, Sql.begin)
      try {
        const written = await this.#number(conn, pending, users, floors, recheck)
        await this.#connections.run(conn, Sql.upsertInboxSeqs(users.length), users.flatMap((user) => [user, written.latest.get(user)]))
        await this.#connections.run(conn, Sql.insertMessages(written.messages.length),
          written.messages.flatMap(({ pending: p, stored }) => [p.userId, stored.seq, stored.id, stored.from, stored.ts, stored.dataJson]))
        await this.#connections.run(conn, Sql.commit)
        this.#counts.batches++
        this.#counts.messages += written.messages.length
        this.#status.markUp()
        return written.messages
      } catch (err) {
        // A connection whose transaction may still be open must not go back to the pool.
        if (!isConnectionError(err)) await this.#connections.run(conn, Sql.rollback).catch(discard)
        throw err
      }
    })
  }

  /** Locks the users' counter rows and gives each pending message its seq. */
  async #number (conn: PoolConnection, pending: PendingAppend[], users: string[], floors: ReadonlyMap<string, number> | undefined, recheck: boolean):
  Promise<{ latest: Map<string, number>, messages: Array<{ pending: PendingAppend, stored: StoredMessage }> }> {
    const latest = new Map<string, number>()
    for (const row of await this.#connections.run<Row[]>(conn, Sql.lockInboxes(users.length), users)) latest.set(columnText(row.user_id), Number(row.seq))
    const unsure = recheck ? users : users.filter((user) => !latest.has(user))
    if (unsure.length > 0) {
      // A user without an inbox row may still have messages (the row was lost): continue after them.
      for (const row of await this.#connections.run<Row[]>(conn, Sql.maxStoredSeq(unsure.length), unsure)) {
        latest.set(columnText(row.user_id), Math.max(latest.get(columnText(row.user_id)) ?? 0, Number(row.seq)))
      }
    }
    for (const user of users) latest.set(user, Math.max(latest.get(user) ?? 0, floors?.get(user) ?? 0))
    const messages = pending.map((p) => {
      const seq = (latest.get(p.userId) ?? 0) + 1
      latest.set(p.userId, seq)
      return { pending: p, stored: { ...p.message, seq } }
    })
    return { latest, messages }
  }

  // ---- reads ----

  async since (userId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    return this.#read(userId, Sql.since, [userId, afterSeq, limit])
  }

  /** Messages with `afterSeq < seq < beforeSeq`, ascending, at most `limit`. */
  async between (userId: string, afterSeq: number, beforeSeq: number, limit: number): Promise<StoredMessage[]> {
    return this.#read(userId, Sql.sinceBefore, [userId, afterSeq, beforeSeq, limit])
  }

  async #read (userId: string, sql: string, values: unknown[]): Promise<StoredMessage[]> {
    const rows = await this.#connections.query<Row[]>(sql, values)
    return rows.map((row) => ({
      id: String(row.id),
      seq: Number(row.seq),
      from: row.sender === null ? null : columnText(row.sender),
      to: { user: userId },
      dataJson: columnText(row.data),
      ts: Number(row.ts)
    }))
  }

  async latestSeq (userId: string): Promise<number> {
    return (await this.#inbox(userId)).seq
  }

  async ackedSeq (userId: string): Promise<number> {
    return (await this.#inbox(userId)).acked
  }

  async #inbox (userId: string): Promise<{ seq: number, acked: number }> {
    const [row] = await this.#connections.query<Row[]>(Sql.inbox, [userId])
    return { seq: Number(row?.seq ?? 0), acked: Number(row?.acked_seq ?? 0) }
  }

  // ---- acks ----

  async ack (userId: string, seq: number): Promise<void> {
    if (this.#closing) throw new ClosedError('the message store is closed')
    return this.#acks.ack(userId, seq)
  }

  // ---- health ----

  /** Runs `SELECT 1` and updates {@link status}; the readiness probe and the periodic check call it. */
  async probe (): Promise<StoreStatus> {
    return this.#probe.probe()
  }

  // ---- retention ----

  /**
   * One pass of the retention job: deletes messages older than `retentionAge`, then trims up to 100
   * users to their `retentionCount` newest messages (the next pass continues with the next users).
   * Returns the rows deleted.
   */
  async runRetention (): Promise<number> {
    return this.#retention.runPass()
  }

  // ---- shutdown ----

  /** Stops the timers, writes every queued append and ack, then refuses new ones. The pool stays open. */
  async close (): Promise<void> {
    this.#closed ??= this.#close()
    return this.#closed
  }

  async #close (): Promise<void> {
    this.#closing = true
    const stopped = Promise.all([this.#probe.stop(), this.#retention.stop(), this.#acks.flush()])
    this.#drain()
    while (this.#work.size > 0 || this.#queue.length > 0) {
      this.#drain()
      await Promise.allSettled([...this.#work, nextTurn()])
    }
    await stopped
  }
}
