/**
 * The appends waiting for MySQL: each sized against the server's packet limit, refused when too many
 * wait, and handed on in batches bounded in count and bytes, one transaction at a time — the appends
 * that arrive while one batch is written share the next (group commit).
 */
import { PayloadError, UnavailableError } from '../../errors.js'
import type { Message } from '../../protocol.js'
import type { StoredMessage } from '../message-store.js'
import { SerialWriter } from './serial-writer.js'

/** An append waiting for its batch; settled by the batch writer. */
export interface PendingAppend {
  userId: string
  message: Omit<Message, 'seq'>
  /** Its share of the INSERT statement, for the batch's byte bound. */
  bytes: number
  resolve: (stored: StoredMessage) => void
  reject: (err: Error) => void
}

/** Stores a batch and settles every append in it; never rejects. */
export type WriteBatch = (batch: PendingAppend[]) => Promise<void>

export interface GroupCommitQueueOptions {
  /** Most messages one batch holds. */
  batchSize: number
  /** Appends waiting beyond which new ones are refused with `WSC_ERR_UNAVAILABLE`. */
  maxQueued: number
}

/** Statement bytes a message row adds besides its payload and user ids. */
const ROW_OVERHEAD = 128
/** Unescaped bytes per INSERT: short lock times, and below max_allowed_packet even if escaping doubles them. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024
/** Characters mysql2 escapes with a backslash in a string literal. */
// eslint-disable-next-line no-control-regex -- these control characters are exactly what gets escaped
const ESCAPED = /[\0\b\t\n\r\x1a"'\\]/g

/** Appends in call order, written in batches by `write`, one batch at a time. */
export class GroupCommitQueue {
  readonly #batchSize: number
  readonly #maxQueued: number
  readonly #write: WriteBatch
  readonly #writer = new SerialWriter(() => this.#queue.length === 0 ? undefined : this.#writeBatch(this.#takeBatch()))
  #queue: PendingAppend[] = []
  /** Largest message row the server accepts, from max_allowed_packet. */
  #maxMessageBytes = MAX_BATCH_BYTES
  #maxBatchBytes = MAX_BATCH_BYTES

  constructor (write: WriteBatch, options: GroupCommitQueueOptions) {
    this.#write = write
    this.#batchSize = options.batchSize
    this.#maxQueued = options.maxQueued
  }

  /** Sizes messages and batches for the server's `max_allowed_packet` (0: unknown, the defaults stay). */
  fitPacket (maxAllowedPacket: number): void {
    if (maxAllowedPacket <= 0) return
    this.#maxMessageBytes = Math.max(1024, maxAllowedPacket - 4 * ROW_OVERHEAD)
    this.#maxBatchBytes = Math.min(MAX_BATCH_BYTES, Math.floor(maxAllowedPacket / 2))
  }

  /** Queues the message; resolves once its batch committed. */
  async enqueue (userId: string, message: Omit<Message, 'seq'>): Promise<StoredMessage> {
    let bytes = Buffer.byteLength(message.dataJson) + 3 * (userId.length + (message.from?.length ?? 0)) + ROW_OVERHEAD
    // Escaping at most doubles the payload: count the escapes only when that could pass the limit.
    if (2 * bytes > this.#maxMessageBytes) bytes += message.dataJson.match(ESCAPED)?.length ?? 0
    if (bytes > this.#maxMessageBytes) {
      throw new PayloadError(`a message of ${bytes} bytes exceeds what MySQL accepts (max_allowed_packet allows ${this.#maxMessageBytes})`)
    }
    if (this.#queue.length >= this.#maxQueued) throw new UnavailableError(`mysql: ${this.#queue.length} messages are waiting to be written; retry`)
    return new Promise((resolve, reject) => {
      this.#queue.push({ userId, message, bytes, resolve, reject })
      if (this.#queue.length >= this.#batchSize) this.#writer.now()
      else this.#writer.soon()
    })
  }

  /** Writes every queued append; resolves when the last batch is settled. */
  async flush (): Promise<void> {
    await this.#writer.flush()
  }

  /** The oldest appends, at most a batch size of them and the batch's byte bound (always at least one). */
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

  async #writeBatch (batch: PendingAppend[]): Promise<void> {
    try {
      await this.#write(batch)
    } catch (err) {
      // The writer settles every append itself; should it throw, no append is left waiting for ever.
      for (const pending of batch) pending.reject(err instanceof Error ? err : new UnavailableError(String(err)))
    }
  }
}
