/**
 * Writing one batch of appends and settling each: one row per message id, the numbering transaction
 * retried after a deadlock, a duplicate key or a lost connection (skipping what a COMMIT that seemed
 * lost did store), then the `afterCommit` hook, then every append resolved or refused.
 */
import { UnavailableError } from '../../errors.js'
import type { StoredMessage } from '../message-store.js'
import type { PendingAppend } from './group-commit-queue.js'
import { columnText, type MySqlConnections, type Row } from './mysql-connections.js'
import { isConflict, isConnectionError } from './mysql-errors.js'
import type { MySqlStatus } from './mysql-status.js'
import { numberAndInsert, type NumberedAppend } from './numbering-transaction.js'
import { Sql } from './schema.js'

/** A committed message and the user it belongs to. */
export interface CommittedMessage {
  userId: string
  message: StoredMessage
}

export interface BatchWriterHooks {
  /**
   * Lowest seq each user's next message may take beyond MySQL's own counter, read before each batch
   * (the Redis window's latest seq, so a MySQL restored from an older backup never reuses a seq).
   */
  seqFloors?: (userIds: readonly string[]) => Promise<ReadonlyMap<string, number>>
  /** Runs after COMMIT and before the batch's appends resolve; a rejection rejects them. */
  afterCommit?: (committed: readonly CommittedMessage[]) => Promise<void>
}

/** Counters of the write path. */
export interface BatchWriterCounts {
  /** Multi-row INSERTs into wsc_messages that committed. */
  batches: number
  /** Messages they committed. */
  messages: number
  /** Transactions run again after a deadlock, a lost connection or a duplicate id. */
  retries: number
}

const MAX_ATTEMPTS = 5

/** Writes batches of appends (see the file's opening comment); an append resolves only after COMMIT. */
export class BatchWriter {
  readonly counts: BatchWriterCounts = { batches: 0, messages: 0, retries: 0 }
  readonly #connections: MySqlConnections
  readonly #status: MySqlStatus
  readonly #hooks: BatchWriterHooks

  constructor (connections: MySqlConnections, status: MySqlStatus, hooks: BatchWriterHooks) {
    this.#connections = connections
    this.#status = status
    this.#hooks = hooks
  }

  /**
   * Writes one batch in one transaction, retrying after a deadlock or a lost connection. Before a
   * retry it looks up which messages are already stored (the COMMIT may have landed), so a retry
   * never stores a message twice. Settles every append; never rejects.
   */
  async write (batch: PendingAppend[]): Promise<void> {
    const committed: NumberedAppend[] = []
    let pending = this.#dedupe(batch)
    let failure: unknown
    for (let attempt = 0; pending.length > 0; attempt++) {
      try {
        if (attempt > 0) pending = await this.#takeStored(pending, committed)
        if (pending.length === 0) break
        const floors = this.#hooks.seqFloors === undefined ? undefined : await this.#hooks.seqFloors([...new Set(pending.map((p) => p.userId))])
        const inserted = await numberAndInsert(this.#connections, pending, floors, attempt > 0)
        this.counts.batches++
        this.counts.messages += inserted.length
        this.#status.markUp()
        committed.push(...inserted)
        pending = []
      } catch (err) {
        // One retry on a fresh connection: a pooled connection may have died while idle.
        if (attempt + 1 < MAX_ATTEMPTS && (isConflict(err) || (attempt === 0 && isConnectionError(err)))) {
          this.counts.retries++
          continue
        }
        failure = err
        break
      }
    }
    await this.#afterCommit(committed)
    for (const { pending, stored } of committed) pending.resolve(stored)
    if (failure !== undefined) {
      const refused = this.#status.refusal(failure)
      for (const p of pending) p.reject(refused)
    }
  }

  /** One row per user and message id: a second append of one in the same batch settles with the first. */
  #dedupe (batch: PendingAppend[]): PendingAppend[] {
    const unique = new Map<string, PendingAppend>()
    for (const p of batch) {
      const key = messageKey(p.userId, p.message.id)
      const first = unique.get(key)
      if (first === undefined) {
        unique.set(key, p)
      } else {
        const { resolve, reject } = first
        first.resolve = (stored) => { resolve(stored); p.resolve(stored) }
        first.reject = (err) => { reject(err); p.reject(err) }
      }
    }
    return unique.size === batch.length ? batch : [...unique.values()]
  }

  /**
   * Resolves the appends whose message is already stored for their user (an earlier attempt committed,
   * or a caller retried a send with its id) with the stored seq; returns the rest.
   */
  async #takeStored (pending: PendingAppend[], committed: NumberedAppend[]): Promise<PendingAppend[]> {
    const rows = await this.#connections.withConnection((conn) =>
      this.#connections.run<Row[]>(conn, Sql.findMessages(pending.length), pending.flatMap((p) => [p.userId, p.message.id])))
    const stored = new Map(rows.map((row) => [messageKey(columnText(row.user_id), String(row.id)), Number(row.seq)]))
    const rest: PendingAppend[] = []
    for (const p of pending) {
      const seq = stored.get(messageKey(p.userId, p.message.id))
      if (seq === undefined) rest.push(p)
      else committed.push({ pending: p, stored: { ...p.message, seq } })
    }
    return rest
  }

  /** Runs the hook on what committed; if it rejects, so do those appends (and `committed` is emptied). */
  async #afterCommit (committed: NumberedAppend[]): Promise<void> {
    if (committed.length === 0 || this.#hooks.afterCommit === undefined) return
    try {
      await this.#hooks.afterCommit(committed.map(({ pending, stored }) => ({ userId: pending.userId, message: stored })))
    } catch (err) {
      const refused = err instanceof Error ? err : new UnavailableError(String(err))
      for (const { pending } of committed) pending.reject(refused)
      committed.length = 0
    }
  }
}

/** A user's message id as one map key (message ids never contain a NUL). */
function messageKey (userId: string, id: string): string {
  return `${userId}\u0000${id}`
}
