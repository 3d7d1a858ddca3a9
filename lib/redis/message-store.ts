/** The message store on Redis alone: the user's inbox numbers and keeps messages (durability `redis`). */
import type { AppendOptions, MessageStore, StoredMessage, StoreStatus, StreamHead } from '../store/message-store.js'
import type { Message } from '../protocol.js'
import { RedisInbox, type RedisCommands } from './inbox.js'

export interface RedisMessageStoreOptions {
  /** Key prefix (`redis.prefix`). Default `wsc:`. */
  prefix?: string
  /** Messages kept per user in the stream (`store.inbox_size`). Default 1000. */
  inboxSize?: number
  /** Payload bytes kept per user (`store.max_inbox_bytes`). Default: no byte bound. */
  maxInboxBytes?: number
  /** ms a user's keys outlive their last write (`store.retention_age`). Default 0: no expiry. */
  retentionAge?: number
}

/**
 * User messages in Redis alone: seq and stream entry written by one script, so a reader never sees a
 * seq without its message. Durable while Redis keeps its data; replays reach back `inboxSize`
 * messages. Every failure rejects with `WSC_ERR_UNAVAILABLE`.
 */
export class RedisMessageStore implements MessageStore {
  readonly durability = 'redis' as const
  /** The user's keys on the caller's connections; the Redis router stores and routes through it in one step when they are its own. */
  readonly inbox: RedisInbox

  /** @param redis owned by the caller (the router plugin), not closed by {@link close} */
  constructor (redis: RedisCommands, options: RedisMessageStoreOptions = {}) {
    this.inbox = new RedisInbox(redis, options.prefix ?? 'wsc:', { size: options.inboxSize ?? 1000, maxBytes: options.maxInboxBytes, retentionAge: options.retentionAge })
  }

  async append (userId: string, message: Omit<Message, 'seq'>, options?: AppendOptions): Promise<StoredMessage> {
    return this.inbox.append(userId, message, options)
  }

  async since (userId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    return this.inbox.range(userId, afterSeq, limit)
  }

  async head (userId: string): Promise<StreamHead> {
    return this.inbox.head(userId)
  }

  async ackedSeq (userId: string): Promise<number> {
    return await this.inbox.acked(userId) ?? 0
  }

  async ack (userId: string, seq: number): Promise<void> {
    await this.inbox.ack(userId, seq)
  }

  status (): StoreStatus {
    return this.inbox.status()
  }

  async close (): Promise<void> {}
}
