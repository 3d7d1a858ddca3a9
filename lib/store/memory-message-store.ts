/**
 * The embedded default `MessageStore`: per-user seq and a bounded inbox in this process's memory,
 * bounded per user (count, bytes) and in all (users, bytes: the least recently written go first).
 */
import { randomBytes } from 'node:crypto'
import type { AppendOptions, MessageStore, StoredMessage, StreamHead } from './message-store.js'
import type { Message } from '../protocol.js'

interface Inbox {
  seq: number
  acked: number
  /** Ascending by seq; the oldest are dropped past the bounds. */
  messages: StoredMessage[]
  /** Index of the oldest message still held (trimmed lazily, so an append does not shift the array). */
  start: number
  /** Payload bytes of the messages held. */
  bytes: number
}

export interface MemoryStoreLimits {
  /** Messages kept per user (`store.inbox_size`). */
  inboxSize: number
  /** Payload bytes kept per user (`store.max_inbox_bytes`). */
  maxInboxBytes?: number | undefined
  /** Users kept (`store.max_users`). */
  maxUsers?: number | undefined
  /** Payload bytes kept for all users (`store.max_bytes`). */
  maxBytes?: number | undefined
}

/** What holding a message costs beyond its payload (the object, its id and strings), for the byte bounds. */
const MESSAGE_OVERHEAD = 200

/** The embedded default: per-user seq and a bounded inbox in this process's memory. */
export class MemoryMessageStore implements MessageStore {
  readonly durability = 'memory' as const
  /** This process's history: a restart loses every user's, so each process names its own. */
  readonly epoch = `m${randomBytes(6).toString('hex')}`
  readonly #limits: Required<MemoryStoreLimits>
  /** By last write, oldest first: the first entries are the ones to drop. */
  readonly #inboxes = new Map<string, Inbox>()
  #bytes = 0
  /**
   * The highest seq of a dropped user: a user's stream made again starts above it, so no seq a client
   * may hold is given again in this epoch (its resume then says `recovered: false`).
   */
  #droppedSeq = 0

  constructor (limits: MemoryStoreLimits | number) {
    const given = typeof limits === 'number' ? { inboxSize: limits } : limits
    this.#limits = {
      inboxSize: given.inboxSize,
      maxInboxBytes: given.maxInboxBytes ?? Infinity,
      maxUsers: given.maxUsers ?? Infinity,
      maxBytes: given.maxBytes ?? Infinity
    }
  }

  /** Users held, and their payload bytes. */
  get size (): { users: number, bytes: number } {
    return { users: this.#inboxes.size, bytes: this.#bytes }
  }

  async append (userId: string, message: Omit<Message, 'seq'>, options: AppendOptions = {}): Promise<StoredMessage> {
    let inbox = this.#inboxes.get(userId)
    if (options.idempotent === true && inbox !== undefined) {
      for (let i = inbox.start; i < inbox.messages.length; i++) if (inbox.messages[i]?.id === message.id) return inbox.messages[i] as StoredMessage
    }
    const created = inbox === undefined
    if (inbox === undefined) {
      inbox = { seq: this.#droppedSeq, acked: 0, messages: [], start: 0, bytes: 0 }
    } else {
      this.#inboxes.delete(userId)
    }
    this.#inboxes.set(userId, inbox)
    // A stream made again after its user was dropped starts above every earlier seq: it follows none.
    const prev = created ? 0 : inbox.seq
    const stored: StoredMessage = { ...message, seq: ++inbox.seq }
    if (prev !== stored.seq - 1) stored.prevSeq = prev
    inbox.messages.push(stored)
    this.#hold(inbox, sizeOf(stored))
    this.#trim(inbox)
    this.#dropIdle(userId)
    return stored
  }

  async since (userId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    const inbox = this.#inboxes.get(userId)
    const first = inbox?.messages[inbox.start]
    if (inbox === undefined || first === undefined) return []
    // seqs are dense within the array, so the first wanted index is computed, not searched.
    const from = Math.max(inbox.start, inbox.start + (afterSeq + 1 - first.seq))
    return inbox.messages.slice(from, from + limit)
  }

  async head (userId: string): Promise<StreamHead> {
    const inbox = this.#inboxes.get(userId)
    return { epoch: this.epoch, latestSeq: inbox?.seq ?? 0, oldestSeq: inbox?.messages[inbox.start]?.seq ?? 0 }
  }

  async ackedSeq (userId: string): Promise<number> {
    return this.#inboxes.get(userId)?.acked ?? 0
  }

  async ack (userId: string, seq: number): Promise<void> {
    const inbox = this.#inboxes.get(userId)
    if (inbox !== undefined) inbox.acked = Math.max(inbox.acked, Math.min(seq, inbox.seq))
  }

  async close (): Promise<void> {
    this.#inboxes.clear()
    this.#bytes = 0
  }

  #hold (inbox: Inbox, bytes: number): void {
    inbox.bytes += bytes
    this.#bytes += bytes
  }

  /** Drops the user's oldest messages past the count and byte bounds (the newest always stays). */
  #trim (inbox: Inbox): void {
    const { inboxSize, maxInboxBytes } = this.#limits
    while (inbox.messages.length - inbox.start > inboxSize || (inbox.bytes > maxInboxBytes && inbox.messages.length - inbox.start > 1)) {
      this.#hold(inbox, -sizeOf(inbox.messages[inbox.start] as StoredMessage))
      inbox.start++
    }
    // Compacted in batches, so a full inbox does not shift the array on every append.
    if (inbox.start > 16 && inbox.start * 4 > inbox.messages.length) {
      inbox.messages.splice(0, inbox.start)
      inbox.start = 0
    }
  }

  /** Drops the least recently written users past the user and byte bounds, never `keep` (just written). */
  #dropIdle (keep: string): void {
    const { maxUsers, maxBytes } = this.#limits
    for (const [userId, inbox] of this.#inboxes) {
      if (this.#inboxes.size <= maxUsers && this.#bytes <= maxBytes) return
      if (userId === keep) return
      this.#inboxes.delete(userId)
      this.#bytes -= inbox.bytes
      this.#droppedSeq = Math.max(this.#droppedSeq, inbox.seq)
    }
  }
}

function sizeOf (message: StoredMessage): number {
  return message.dataJson.length + MESSAGE_OVERHEAD
}
