/**
 * The `MessageStore` used with both Redis and MySQL: MySQL numbers and keeps every message, a per-user
 * Redis stream keeps the recent ones so most replays never reach MySQL.
 */
import type { Pool } from 'mysql2/promise'
import type { AppendOptions, MessageStore, StoredMessage, StoreStatus, StreamHead } from './message-store.js'
import { MySqlMessageStore, type MySqlMessageStoreOptions } from './mysql/mysql-message-store.js'
import type { MigrationResult } from './mysql/schema.js'
import type { Message } from '../protocol.js'
import { RedisInbox, type RedisCommands } from '../redis/inbox.js'

export interface RedisMySqlMessageStoreOptions extends Omit<MySqlMessageStoreOptions, 'seqFloors' | 'afterCommit'> {
  /** Key prefix (`redis.prefix`). Default `wsc:`. */
  prefix?: string
  /** Messages kept per user in the Redis window (`store.inbox_size`). Default 1000. */
  inboxSize?: number
}

/**
 * MySQL for durability, Redis for the hot window. MySQL numbers and commits each message (its counter
 * row lock makes a user's messages commit in seq order, and a seq is never reused whatever happens to
 * Redis); then the message enters the user's Redis stream, and only then does the append resolve. A
 * `since` replay inside the window never touches MySQL; one reaching further back reads the older
 * part from MySQL and continues in the window, without a gap or a duplicate.
 */
export class RedisMySqlMessageStore implements MessageStore {
  readonly durability = 'mysql' as const
  /** The MySQL half, for its stats and its retention job. */
  readonly mysql: MySqlMessageStore
  readonly #window: RedisInbox

  /** @param redis owned by the router plugin; @param pool owned by the caller, both left open by {@link close} */
  constructor (redis: RedisCommands, pool: Pool, options: RedisMySqlMessageStoreOptions = {}) {
    const { prefix = 'wsc:', inboxSize = 1000, ...mysqlOptions } = options
    const window = new RedisInbox(redis, prefix, { size: inboxSize, maxBytes: options.maxInboxBytes, retentionAge: options.retentionAge })
    this.#window = window
    this.mysql = new MySqlMessageStore(pool, {
      ...mysqlOptions,
      // The window's seq key is a floor: a MySQL restored from an older backup continues above it.
      seqFloors: async (userIds) => {
        const latest = await window.latest(userIds)
        return new Map([...latest].map(([userId, seq]) => [userId, seq ?? 0]))
      },
      afterCommit: (committed) => window.cache(committed)
    })
  }

  /** Migrates the schema and starts the MySQL probe and retention job. */
  async start (): Promise<MigrationResult> {
    return this.mysql.start()
  }

  async append (userId: string, message: Omit<Message, 'seq'>, options?: AppendOptions): Promise<StoredMessage> {
    return this.mysql.append(userId, message, options)
  }

  async since (userId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    let window
    try {
      window = await this.#window.window(userId, afterSeq, limit)
    } catch {
      return this.mysql.since(userId, afterSeq, limit)
    }
    if (window.latest === undefined) return this.mysql.since(userId, afterSeq, limit)
    if (afterSeq >= window.latest) return []
    const first = window.messages[0]
    if (first !== undefined && first.seq === afterSeq + 1) return window.messages
    // The window starts after afterSeq + 1: the older part is in MySQL, all of it committed, since the
    // window only holds committed messages and a user's messages commit in seq order.
    const older = await this.mysql.between(userId, afterSeq, first?.seq ?? window.latest + 1, limit)
    return older.length >= limit ? older : older.concat(window.messages.slice(0, limit - older.length))
  }

  /**
   * MySQL's epoch and oldest seq (it holds every message retained); the latest seq as {@link since}
   * sees it: the window's while the window is warm. A message MySQL committed and the window does not
   * hold yet is still on its way to the connection (its append has not resolved), so a welcome must not
   * count it as sent.
   */
  async head (userId: string): Promise<StreamHead> {
    const [mysql, window] = await Promise.all([
      this.mysql.head(userId),
      this.#window.latest([userId]).then((latest) => latest.get(userId), () => undefined)
    ])
    return window === undefined ? mysql : { ...mysql, latestSeq: window }
  }

  async ackedSeq (userId: string): Promise<number> {
    try {
      const acked = await this.#window.acked(userId)
      if (acked !== undefined) return acked
    } catch {}
    return this.mysql.ackedSeq(userId)
  }

  /** Records the ack in both; it counts once either has it (a lost ack only means a longer replay). */
  async ack (userId: string, seq: number): Promise<void> {
    const [redis, mysql] = await Promise.allSettled([this.#window.ack(userId, seq), this.mysql.ack(userId, seq)])
    if (redis.status === 'rejected' && mysql.status === 'rejected') throw mysql.reason
  }

  status (): StoreStatus {
    const mysql = this.mysql.status()
    const redis = this.#window.status()
    const status: StoreStatus = { up: mysql.up && redis.up, detail: `${mysql.detail}; ${redis.detail}` }
    if (mysql.latencyMs !== undefined) status.latencyMs = mysql.latencyMs
    return status
  }

  /** Writes what is queued, then stops the MySQL timers; the Redis client and the pool stay open. */
  async close (): Promise<void> {
    await this.mysql.close()
  }
}
