/** The embedded default `MessageStore`: per-user seq and a bounded inbox in this process's memory. */
import { randomBytes } from 'node:crypto'
import type { AppendOptions, MessageStore, StoredMessage, StreamHead } from './message-store.js'
import type { Message } from '../protocol.js'

interface Inbox {
  seq: number
  acked: number
  /** Ascending by seq; the oldest are dropped past the bound. */
  messages: StoredMessage[]
}

/** The embedded default: per-user seq and a bounded inbox in this process's memory. */
export class MemoryMessageStore implements MessageStore {
  readonly durability = 'memory' as const
  /** This process's history: a restart loses every user's, so each process names its own. */
  readonly epoch = `m${randomBytes(6).toString('hex')}`
  readonly #inboxSize: number
  readonly #inboxes = new Map<string, Inbox>()

  /** @param inboxSize messages kept per user (`store.inbox_size`) */
  constructor (inboxSize: number) {
    this.#inboxSize = inboxSize
  }

  #inbox (userId: string): Inbox {
    let inbox = this.#inboxes.get(userId)
    if (inbox === undefined) this.#inboxes.set(userId, inbox = { seq: 0, acked: 0, messages: [] })
    return inbox
  }

  async append (userId: string, message: Omit<Message, 'seq'>, options: AppendOptions = {}): Promise<StoredMessage> {
    const inbox = this.#inbox(userId)
    if (options.idempotent === true) {
      const stored = this.#window(inbox).find((held) => held.id === message.id)
      if (stored !== undefined) return stored
    }
    const stored: StoredMessage = { ...message, seq: ++inbox.seq }
    inbox.messages.push(stored)
    // Trim in batches so a full inbox does not shift the array on every append.
    if (inbox.messages.length > this.#inboxSize * 1.25 + 16) inbox.messages.splice(0, inbox.messages.length - this.#inboxSize)
    return stored
  }

  /** The messages held for the user: the newest `inboxSize`. */
  #window (inbox: Inbox): StoredMessage[] {
    return inbox.messages.length > this.#inboxSize ? inbox.messages.slice(-this.#inboxSize) : inbox.messages
  }

  async since (userId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    const inbox = this.#inboxes.get(userId)
    if (inbox === undefined) return []
    const messages = inbox.messages
    const windowStart = Math.max(0, messages.length - this.#inboxSize)
    // seqs are dense within the array, so the first wanted index is computed, not searched.
    const first = messages[windowStart]
    if (first === undefined) return []
    const from = Math.max(windowStart, windowStart + (afterSeq + 1 - first.seq))
    return messages.slice(from, from + limit)
  }

  async head (userId: string): Promise<StreamHead> {
    const inbox = this.#inboxes.get(userId)
    const oldest = inbox === undefined ? undefined : inbox.messages[Math.max(0, inbox.messages.length - this.#inboxSize)]
    return { epoch: this.epoch, latestSeq: inbox?.seq ?? 0, oldestSeq: oldest?.seq ?? 0 }
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
  }
}
