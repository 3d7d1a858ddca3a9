/**
 * One user's inbox in Redis (the seq counter, the bounded stream of recent messages, the acked seq) and
 * the Redis commands of durable delivery, for the Redis message store and the Redis window of MySQL
 * (the batched send that also routes is user-sends.ts, on the same keys).
 */
import { asUnavailable } from '../errors.js'
import { randomBytes } from 'node:crypto'
import type { AppendOptions, StoredMessage, StoreStatus, StreamHead } from '../store/message-store.js'
import type { Message } from '../protocol.js'
import { RedisCommandPool, type RedisClient } from './command-pool.js'
import { RedisKeys } from './keys.js'
import { runScript, type ScriptName } from './scripts.js'

/** The router plugin's command connections, or one client of the caller's (a pool of one). */
export type RedisCommands = RedisCommandPool | RedisClient

type StreamEntry = [id: string, fields: string[]]

function decode (userId: string, [id, fields]: StreamEntry): StoredMessage {
  const message: StoredMessage = { id: '', seq: Number(id.slice(0, id.indexOf('-'))), from: null, to: { user: userId }, dataJson: 'null', ts: 0 }
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const value = fields[i + 1] as string
    switch (fields[i]) {
      case 'i': message.id = value; break
      case 'f': message.from = value; break
      case 'ts': message.ts = Number(value); break
      case 'd': message.dataJson = value; break
    }
  }
  return message
}

const unavailable = (err: unknown): Error => asUnavailable('Redis', err)

/** What one user's inbox may hold, and for how long. */
export interface InboxLimits {
  /** Messages (`store.inbox_size`). */
  size: number
  /** Payload bytes (`store.max_inbox_bytes`); default: no byte bound. */
  maxBytes?: number | undefined
  /** ms the user's keys outlive their last write (`store.retention_age`); 0 or default: no expiry. */
  retentionAge?: number | undefined
}

/** What the Redis window holds for a `since` read. */
export interface InboxWindow {
  /** The seq key: the newest seq the window has seen; undefined when the key is missing (cold). */
  latest: number | undefined
  /** Messages from `afterSeq + 1` on, ascending, at most `limit`. */
  messages: StoredMessage[]
}

/**
 * One user's inbox in Redis: the seq counter, the bounded stream and the acked seq. Each command runs
 * on the user's pool connection, so one user's appends are numbered in the order they were made. The connections belong to the caller (the router plugin).
 */
export class RedisInbox {
  readonly pool: RedisCommandPool
  /** Key names; the `{userId}` hash tag puts all of one user's keys in one Cluster slot, so one script can update them together. */
  readonly keys: RedisKeys
  /** maxlen, maxbytes, ttl: the first arguments of the scripts that add to a stream. */
  readonly bounds: readonly [maxlen: number, maxbytes: number, ttl: number]

  /**
   * @param prefix key prefix (`redis.prefix`)
   * @param limits per user: messages kept (`store.inbox_size`), their payload bytes
   *   (`store.max_inbox_bytes`), and how long the user's keys outlive their last write (ms,
   *   `store.retention_age`; 0: no expiry)
   */
  constructor (redis: RedisCommands, prefix: string, limits: InboxLimits) {
    this.pool = RedisCommandPool.of(redis)
    this.keys = new RedisKeys(prefix)
    this.bounds = [limits.size, limits.maxBytes ?? Number.MAX_SAFE_INTEGER, limits.retentionAge ?? 0]
  }

  /** The keys a script that adds to the user's stream takes, in the order `inbox-scripts.ts` reads them. */
  streamKeys (userId: string): string[] {
    return [this.keys.seq(userId), this.keys.inbox(userId), this.keys.ids(userId), this.keys.inboxBytes(userId)]
  }

  /** Runs a script on the user's seq and inbox keys, on the user's connection. */
  #script (userId: string, name: ScriptName, ...args: Array<string | number>): Promise<unknown> {
    return this.pool.forUser(userId, (client) => runScript(client, name, [this.keys.seq(userId), this.keys.inbox(userId)], args))
  }

  /**
   * Numbers the message with the user's next seq and appends it to the stream, atomically; an
   * idempotent one whose id the user's stream holds comes back with the seq it was stored under.
   */
  async append (userId: string, message: Omit<Message, 'seq'>, options: AppendOptions = {}): Promise<StoredMessage> {
    try {
      const args = [...this.bounds, message.id, message.from ?? '', message.ts, message.dataJson, options.idempotent === true ? '1' : '']
      const [seq, prev] = await this.pool.forUser(userId, (client) => runScript(client, 'wscInboxAppend', this.streamKeys(userId), args)) as [string, string]
      const stored: StoredMessage = { ...message, seq: Number(seq) }
      if (Number(prev) !== stored.seq - 1) stored.prevSeq = Number(prev)
      return stored
    } catch (err) {
      throw unavailable(err)
    }
  }

  /** Puts messages MySQL committed into their users' windows (the `INBOX_CACHE` script). */
  async cache (committed: ReadonlyArray<{ userId: string, message: StoredMessage }>): Promise<void> {
    const byUser = new Map<string, StoredMessage[]>()
    for (const { userId, message } of committed) {
      const list = byUser.get(userId)
      if (list === undefined) byUser.set(userId, [message])
      else list.push(message)
    }
    try {
      await Promise.all([...byUser].map(([userId, messages]) => {
        messages.sort((a, b) => a.seq - b.seq)
        const args = [...this.bounds, ...messages.flatMap((m) => [m.seq, m.id, m.from ?? '', m.ts, m.dataJson])]
        return this.pool.forUser(userId, (client) => runScript(client, 'wscInboxCache', this.streamKeys(userId), args))
      }))
    } catch (err) {
      throw unavailable(err)
    }
  }

  /** Messages with `seq > afterSeq` from the stream, at most `limit`, with the seq key. */
  async window (userId: string, afterSeq: number, limit: number): Promise<InboxWindow> {
    let reply: [string, StreamEntry[]?]
    try {
      reply = await this.#script(userId, 'wscInboxWindow', `${afterSeq + 1}-0`, limit) as [string, StreamEntry[]?]
    } catch (err) {
      throw unavailable(err)
    }
    const [latest, entries = []] = reply
    return { latest: latest === '' ? undefined : Number(latest), messages: entries.map((entry) => decode(userId, entry)) }
  }

  /** Messages with `seq > afterSeq` from the stream, ascending, at most `limit`. */
  async range (userId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    try {
      const entries = await this.pool.forUser(userId, (client) => client.xrange(this.keys.inbox(userId), `${afterSeq + 1}-0`, '+', 'COUNT', limit))
      return entries.map((entry) => decode(userId, entry))
    } catch (err) {
      throw unavailable(err)
    }
  }

  /** The user's stream: this dataset's epoch, the latest seq and the oldest one held. */
  async head (userId: string): Promise<StreamHead> {
    try {
      const [[latest, oldest], epoch] = await Promise.all([
        this.#script(userId, 'wscInboxHead') as Promise<[string, string]>,
        this.epoch()
      ])
      return { epoch, latestSeq: latest === '' ? 0 : Number(latest), oldestSeq: oldest === '' ? 0 : Number(oldest.slice(0, oldest.indexOf('-'))) }
    } catch (err) {
      throw unavailable(err)
    }
  }

  /**
   * This Redis dataset's epoch, made by the first node that asks: a Redis restarted without its data
   * has none, and the next node to ask makes a new one, so clients learn that history was lost.
   */
  async epoch (): Promise<string> {
    const key = this.keys.epoch
    return await this.pool.forNode(async (client) => {
      const existing = await client.get(key)
      if (existing !== null) return existing
      await client.set(key, `r${randomBytes(6).toString('hex')}`, 'NX')
      return await client.get(key) ?? ''
    })
  }

  /** The seq key of each user (undefined when missing). */
  async latest (userIds: readonly string[]): Promise<Map<string, number | undefined>> {
    try {
      const values = await Promise.all(userIds.map((userId) => this.pool.forUser(userId, (client) => client.get(this.keys.seq(userId)))))
      return new Map(userIds.map((userId, i) => [userId, values[i] === null || values[i] === undefined ? undefined : Number(values[i])]))
    } catch (err) {
      throw unavailable(err)
    }
  }

  /** The acked seq, undefined when the key is missing. */
  async acked (userId: string): Promise<number | undefined> {
    try {
      const value = await this.pool.forUser(userId, (client) => client.get(this.keys.acked(userId)))
      return value === null ? undefined : Number(value)
    } catch (err) {
      throw unavailable(err)
    }
  }

  async ack (userId: string, seq: number): Promise<void> {
    try {
      await this.pool.forUser(userId, (client) => runScript(client, 'wscInboxAck', [this.keys.acked(userId), this.keys.seq(userId)], [seq, this.bounds[2]]))
    } catch (err) {
      throw unavailable(err)
    }
  }

  /** Up unless a connection is down (one still making its first connection counts as up: commands wait for it). */
  status (): StoreStatus {
    const problems = this.pool.problems()
    if (problems.length > 0) return { up: false, detail: `redis: ${problems.join('; ')}` }
    const connecting = this.pool.connecting
    return { up: true, detail: connecting === 0 ? 'redis: ready' : `redis: ready; ${connecting} of ${this.pool.size} command connections still connecting` }
  }
}
