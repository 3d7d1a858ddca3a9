/**
 * `MySqlMessageStore`, the `MessageStore` over MySQL: composes the group-commit queue, the batch
 * writer, the ack batcher, the health probe and the retention job; owns start-up, the reads and the
 * order of shutdown.
 */
import type { Pool } from 'mysql2/promise'
import { ClosedError } from '../../errors.js'
import type { Message } from '../../protocol.js'
import type { AppendOptions, MessageStore, StoredMessage, StoreStatus, StreamHead } from '../message-store.js'
import { AckBatcher } from './ack-batcher.js'
import { BatchWriter, type BatchWriterHooks } from './batch-writer.js'
import { GroupCommitQueue } from './group-commit-queue.js'
import { HealthProbe } from './health-probe.js'
import { columnText, MySqlConnections, type Row } from './mysql-connections.js'
import { MySqlStatus } from './mysql-status.js'
import { RetentionJob } from './retention-job.js'
import { migrate, Sql, type MigrationResult } from './schema.js'

export type { CommittedMessage } from './batch-writer.js'

export interface MySqlMessageStoreOptions extends BatchWriterHooks {
  /** Most messages one multi-row INSERT writes (`store.batch_size`). Default 500. */
  batchSize?: number
  /** Appends waiting for a batch beyond which new ones are refused with `WSC_ERR_UNAVAILABLE`. Default 20 × batchSize. */
  maxQueued?: number
  /** Messages older than this (ms) are deleted by the cleanup job; 0 = kept forever (`store.retention_age`). */
  retentionAge?: number
  /** Messages kept per user; 0 = no limit (`store.retention_count`). */
  retentionCount?: number
  /** Payload bytes kept per user; the cleanup job deletes the oldest past it (`store.max_inbox_bytes`). Default: no bound. */
  maxInboxBytes?: number
  /** Pause between two cleanup passes (ms); 0 = no cleanup timer ({@link MySqlMessageStore.runRetention} still works). */
  cleanupInterval?: number
  /** Rows one cleanup DELETE removes; small so it holds its locks briefly. Default 500. */
  cleanupBatch?: number
  /** How often the health probe runs (ms); 0 = no probe. Default 5000. */
  probeInterval?: number
  /** Client-side timeout of one statement (ms). Default 10000. */
  queryTimeout?: number
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

/**
 * User messages in MySQL: per-user seq from the `wsc_inboxes` counter row (locked until COMMIT, so a
 * user's messages commit in seq order and a reader never sees a gap that fills later), group commit
 * (one transaction at a time; the appends that arrive while it runs share the next multi-row INSERT),
 * retention, and a health probe. An append resolves only after COMMIT; when MySQL cannot be reached
 * it rejects with `WSC_ERR_UNAVAILABLE` and the mysql2 pool reconnects by itself.
 */
export class MySqlMessageStore implements MessageStore {
  readonly durability = 'mysql' as const
  readonly #pool: Pool
  readonly #status = new MySqlStatus()
  readonly #connections: MySqlConnections
  readonly #writer: BatchWriter
  readonly #queue: GroupCommitQueue
  readonly #acks: AckBatcher
  readonly #probe: HealthProbe
  readonly #retention: RetentionJob
  /** This database's history, made when its schema was created. */
  #epoch = ''
  #started = false
  #closing = false
  #closed: Promise<void> | undefined

  /** @param pool a mysql2 promise pool; the caller owns it and ends it after {@link close}. */
  constructor (pool: Pool, options: MySqlMessageStoreOptions = {}) {
    const { batchSize = 500, queryTimeout = 10_000, probeInterval = 5000 } = options
    this.#pool = pool
    this.#connections = new MySqlConnections(pool, queryTimeout, this.#status)
    this.#writer = new BatchWriter(this.#connections, this.#status, { seqFloors: options.seqFloors, afterCommit: options.afterCommit })
    this.#queue = new GroupCommitQueue((batch) => this.#writer.write(batch), { batchSize, maxQueued: options.maxQueued ?? 20 * batchSize })
    this.#acks = new AckBatcher(this.#connections)
    this.#probe = new HealthProbe(this.#connections, this.#status, probeInterval)
    this.#retention = new RetentionJob(this.#connections, this.#status, {
      retentionAge: options.retentionAge ?? 0,
      retentionCount: options.retentionCount ?? 0,
      maxInboxBytes: options.maxInboxBytes ?? 0,
      cleanupInterval: options.cleanupInterval ?? 0,
      cleanupBatch: options.cleanupBatch ?? 500
    })
  }

  /** Migrates the schema, reads the server's packet limit, then starts the probe and the cleanup job. */
  async start (): Promise<MigrationResult> {
    const migration = await migrate(this.#pool)
    const [[packet]] = await this.#pool.query<Row[]>(Sql.maxAllowedPacket)
    const [[epoch]] = await this.#pool.query<Row[]>(Sql.epoch)
    this.#epoch = columnText(epoch?.value ?? '')
    this.#queue.fitPacket(Number(packet?.bytes ?? 0))
    this.#status.started(migration.version)
    this.#started = true
    this.#probe.start()
    this.#retention.start()
    return migration
  }

  /** Counters of the write path and the retention job. */
  get stats (): MySqlStoreStats {
    return { ...this.#writer.counts, deleted: this.#retention.deleted }
  }

  status (): StoreStatus {
    return this.#status.current()
  }

  /** Every append is idempotent by id: the table holds one message per user and id. */
  async append (userId: string, message: Omit<Message, 'seq'>, _options?: AppendOptions): Promise<StoredMessage> {
    if (this.#closing) throw new ClosedError('the message store is closed')
    if (!this.#started) throw new ClosedError('the message store has not started')
    const stored = await this.#queue.enqueue(userId, message)
    this.#retention.noteWritten(userId)
    return stored
  }

  async since (userId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    return this.#read(userId, Sql.since, [userId, afterSeq, limit])
  }

  /** Messages with `afterSeq < seq < beforeSeq`, ascending, at most `limit`. */
  async between (userId: string, afterSeq: number, beforeSeq: number, limit: number): Promise<StoredMessage[]> {
    return this.#read(userId, Sql.sinceBefore, [userId, afterSeq, beforeSeq, limit])
  }

  async head (userId: string): Promise<StreamHead> {
    const [row] = await this.#connections.query<Row[]>(Sql.head, [userId])
    return { epoch: this.#epoch, latestSeq: Number(row?.seq ?? 0), oldestSeq: Number(row?.oldest ?? 0) }
  }

  async ackedSeq (userId: string): Promise<number> {
    return (await this.#inbox(userId)).acked
  }

  async ack (userId: string, seq: number): Promise<void> {
    if (this.#closing) throw new ClosedError('the message store is closed')
    return this.#acks.ack(userId, seq)
  }

  /** Runs `SELECT 1` now and updates {@link status}, as the periodic probe does every `probeInterval`. */
  async probe (): Promise<StoreStatus> {
    return this.#probe.probe()
  }

  /**
   * One pass of the retention job: deletes messages older than `retentionAge`, then trims to their
   * `retentionCount` newest messages and `maxInboxBytes` every user written to since the last pass,
   * and up to 100 others (a sweep that the next pass continues). Returns the rows deleted.
   */
  async runRetention (): Promise<number> {
    return this.#retention.runPass()
  }

  /** Stops the timers, writes every queued append and ack, then refuses new ones. The pool stays open. */
  async close (): Promise<void> {
    this.#closed ??= this.#close()
    return this.#closed
  }

  async #close (): Promise<void> {
    this.#closing = true
    await Promise.all([this.#probe.stop(), this.#retention.stop(), this.#queue.flush(), this.#acks.flush()])
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

  async #inbox (userId: string): Promise<{ seq: number, acked: number }> {
    const [row] = await this.#connections.query<Row[]>(Sql.inbox, [userId])
    return { seq: Number(row?.seq ?? 0), acked: Number(row?.acked_seq ?? 0) }
  }
}
