import { UnavailableError } from './errors.js'
import type { MessageStore, StoredMessage, StoreStatus } from './store/message-store.js'
import type { Message } from './protocol.js'
import { RedisCommandPool, type RedisClient } from './redis-command-pool.js'
import { RedisKeys } from './redis-keys.js'

/** The router plugin's command connections, or one client of the caller's (a pool of one). */
export type RedisCommands = RedisCommandPool | RedisClient

/**
 * KEYS seq, inbox; ARGV maxlen, id, from ('' = null), ts, data → the new seq.
 * A missing counter (new user, or Redis restarted empty or flushed) starts from the Redis clock in ms
 * times 256, and past the stream's newest entry: above every seq given before, unless one user
 * received more than 256 messages per ms on average since its counter was last started.
 */
const START_COUNTER = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  local now = redis.call('TIME')
  local start = (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)) * 256
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if #top > 0 then
    local newest = tonumber(string.match(top[1][1], '^(%d+)'))
    if newest > start then start = newest end
  end
  redis.call('SET', KEYS[1], string.format('%.0f', start))
end
`
const APPEND = START_COUNTER + `
local seq = string.format('%.0f', redis.call('INCR', KEYS[1]))
local fields = { 'i', ARGV[2], 'ts', ARGV[4], 'd', ARGV[5] }
if ARGV[3] ~= '' then fields[#fields + 1] = 'f'; fields[#fields + 1] = ARGV[3] end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], seq .. '-0', unpack(fields))
return seq
`

/**
 * KEYS seq, inbox; ARGV maxlen, then (seq, id, from, ts, data) per message, ascending and contiguous.
 * Caches messages MySQL committed. The stream always holds a contiguous run of seqs ending at the seq
 * key: a run that does not follow on restarts the stream; a run already behind is left to MySQL.
 */
const CACHE = `
local latest = redis.call('GET', KEYS[1])
local n = (#ARGV - 1) / 5
local first = tonumber(ARGV[2])
local last = ARGV[2 + (n - 1) * 5]
local floor = 0
if latest then floor = tonumber(latest) end
if not latest or first > floor + 1 then
  redis.call('DEL', KEYS[2])
  floor = 0
elseif tonumber(last) <= floor then
  return 0
end
for i = 0, n - 1 do
  local at = 2 + i * 5
  if tonumber(ARGV[at]) > floor then
    local fields = { 'i', ARGV[at + 1], 'ts', ARGV[at + 3], 'd', ARGV[at + 4] }
    if ARGV[at + 2] ~= '' then fields[#fields + 1] = 'f'; fields[#fields + 1] = ARGV[at + 2] end
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], ARGV[at] .. '-0', unpack(fields))
  end
end
redis.call('SET', KEYS[1], last)
return n
`

/**
 * KEYS seq, inbox → the latest seq, starting a missing counter as {@link APPEND} would. A connection's
 * welcome then names the seq the user's next message follows, so the first live message is not
 * mistaken for one after a gap (a new counter starts far above 0).
 */
const LATEST = START_COUNTER + `
return redis.call('GET', KEYS[1])
`

/** KEYS seq, inbox; ARGV first id, count → { latest seq or '', entries from the first id on }. */
const WINDOW = `
local latest = redis.call('GET', KEYS[1])
if not latest then return { '' } end
return { latest, redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2]) }
`

/** KEYS acked, seq; ARGV seq: raises the acked seq, never past the latest seq nor backwards. */
const ACK = `
local latest = tonumber(redis.call('GET', KEYS[2]) or '0')
local acked = tonumber(redis.call('GET', KEYS[1]) or '0')
local seq = math.min(tonumber(ARGV[1]), latest)
if seq > acked then redis.call('SET', KEYS[1], string.format('%.0f', seq)) end
return 0
`

const SCRIPTS = { wscInboxAppend: APPEND, wscInboxLatest: LATEST, wscInboxCache: CACHE, wscInboxWindow: WINDOW, wscInboxAck: ACK } as const
type ScriptName = keyof typeof SCRIPTS
type ScriptCaller = (...args: Array<string | number>) => Promise<unknown>

/** Runs a script defined with `defineCommand` (EVALSHA, EVAL on NOSCRIPT). */
function runScript (client: RedisClient, name: ScriptName, args: Array<string | number>): Promise<unknown> {
  return ((client as unknown as Record<ScriptName, ScriptCaller>)[name]).apply(client, args)
}

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

function unavailable (err: unknown): Error {
  if (err instanceof UnavailableError) return err
  return new UnavailableError(`redis: ${(err as Error).message ?? String(err)}`, { cause: err })
}

/** What the Redis window holds for a `since` read. */
export interface InboxWindow {
  /** The seq key: the newest seq the window has seen; undefined when the key is missing (cold). */
  latest: number | undefined
  /** Messages from `afterSeq + 1` on, ascending, at most `limit`. */
  messages: StoredMessage[]
}

/**
 * One user's inbox in Redis: the seq counter, the bounded stream and the acked seq. Every Redis
 * command of durable delivery is here, each on the user's pool connection, so one user's appends
 * are numbered in the order they were made. The connections belong to the caller (the router plugin).
 */
export class RedisInbox {
  readonly pool: RedisCommandPool
  /** Key names; the `{userId}` hash tag puts all of one user's keys in one Cluster slot, so one script can update them together. */
  readonly keys: RedisKeys
  readonly #size: number

  /**
   * @param prefix key prefix (`redis.prefix`)
   * @param size stream length kept per user (`store.inbox_size`), trimmed approximately
   */
  constructor (redis: RedisCommands, prefix: string, size: number) {
    this.pool = RedisCommandPool.of(redis)
    this.keys = new RedisKeys(prefix)
    this.#size = size
    for (const client of this.pool.clients) {
      const commands = client as unknown as Record<string, unknown>
      for (const [name, lua] of Object.entries(SCRIPTS)) {
        if (typeof commands[name] !== 'function') client.defineCommand(name, { numberOfKeys: 2, lua })
      }
    }
  }

  #script (userId: string, name: ScriptName, ...args: Array<string | number>): Promise<unknown> {
    return this.pool.forUser(userId, (client) => runScript(client, name, args))
  }

  /** Numbers the message with the user's next seq and appends it to the stream, atomically. */
  async append (userId: string, message: Omit<Message, 'seq'>): Promise<StoredMessage> {
    try {
      const seq = await this.#script(userId, 'wscInboxAppend', this.keys.seq(userId), this.keys.inbox(userId), this.#size, message.id, message.from ?? '', message.ts, message.dataJson)
      return { ...message, seq: Number(seq) }
    } catch (err) {
      throw unavailable(err)
    }
  }

  /** Puts messages MySQL committed into their users' windows (see {@link CACHE}). */
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
        const args = messages.flatMap((m) => [m.seq, m.id, m.from ?? '', m.ts, m.dataJson])
        return this.#script(userId, 'wscInboxCache', this.keys.seq(userId), this.keys.inbox(userId), this.#size, ...args)
      }))
    } catch (err) {
      throw unavailable(err)
    }
  }

  /** Messages with `seq > afterSeq` from the stream, at most `limit`, with the seq key. */
  async window (userId: string, afterSeq: number, limit: number): Promise<InboxWindow> {
    let reply: [string, StreamEntry[]?]
    try {
      reply = await this.#script(userId, 'wscInboxWindow', this.keys.seq(userId), this.keys.inbox(userId), `${afterSeq + 1}-0`, limit) as [string, StreamEntry[]?]
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

  /** The seq key of each user (undefined when missing). */
  /** The user's latest seq; a missing counter is started first (see {@link LATEST}). */
  async startedLatest (userId: string): Promise<number> {
    try {
      return Number(await this.#script(userId, 'wscInboxLatest', this.keys.seq(userId), this.keys.inbox(userId)))
    } catch (err) {
      throw unavailable(err)
    }
  }

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
      await this.#script(userId, 'wscInboxAck', this.keys.acked(userId), this.keys.seq(userId), seq)
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

export interface RedisMessageStoreOptions {
  /** Key prefix (`redis.prefix`). Default `wsc:`. */
  prefix?: string
  /** Messages kept per user in the stream (`store.inbox_size`). Default 1000. */
  inboxSize?: number
}

/**
 * User messages in Redis alone: seq and stream entry written by one script, so a reader never sees a
 * seq without its message. Durable while Redis keeps its data; replays reach back `inboxSize`
 * messages. Every failure rejects with `WSC_ERR_UNAVAILABLE`.
 */
export class RedisMessageStore implements MessageStore {
  readonly durability = 'redis' as const
  readonly #inbox: RedisInbox

  /** @param redis owned by the caller (the router plugin), not closed by {@link close} */
  constructor (redis: RedisCommands, options: RedisMessageStoreOptions = {}) {
    this.#inbox = new RedisInbox(redis, options.prefix ?? 'wsc:', options.inboxSize ?? 1000)
  }

  async append (userId: string, message: Omit<Message, 'seq'>): Promise<StoredMessage> {
    return this.#inbox.append(userId, message)
  }

  async since (userId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    return this.#inbox.range(userId, afterSeq, limit)
  }

  async latestSeq (userId: string): Promise<number> {
    return this.#inbox.startedLatest(userId)
  }

  async ackedSeq (userId: string): Promise<number> {
    return await this.#inbox.acked(userId) ?? 0
  }

  async ack (userId: string, seq: number): Promise<void> {
    await this.#inbox.ack(userId, seq)
  }

  status (): StoreStatus {
    return this.#inbox.status()
  }

  async close (): Promise<void> {}
}
