/**
 * Cluster-wide presence in Redis: which node hosts each connection of a user (`presence:{user}`), the
 * users each node hosts (`node-users:<node>`, so survivors reap a dead node without scanning), this
 * node's own connections as the truth Redis is repaired from, and the purge of a node's entries.
 */
import { UnavailableError } from '../errors.js'
import type { Logger } from '../logger.js'
import { Multimap } from '../multimap.js'
import type { PresenceEntry } from '../router/router.js'
import type { RedisClient, RedisCommandPool } from './command-pool.js'
import type { RedisKeys } from './keys.js'
import { runScript } from './scripts.js'

const SCAN_COUNT = 500
const BATCH = 100

function chunks<T> (items: T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

export interface RedisPresenceOptions {
  commands: RedisCommandPool
  keys: RedisKeys
  log: Logger
  /** This node's connections changed (the registry entry carries their count). */
  onChange: () => void
  /** A write did not reach Redis: presence must be republished when Redis returns. */
  onWriteFailed: () => void
  /** Presence was republished after a loss: sends meanwhile may have missed this node. */
  afterSync: () => void
}

/** Presence of one node's connections, and the reading of everyone's. */
export class RedisPresence {
  readonly #options: RedisPresenceOptions
  readonly #commands: RedisCommandPool
  readonly #keys: RedisKeys
  /** This node's connections by user: the truth that presence in Redis is rebuilt from. */
  readonly #local = new Multimap<string, string>()
  /** Writes in flight, awaited before deregistering: they may run on other connections than the purge. */
  readonly #writes = new Set<Promise<unknown>>()
  #nodeId: string | undefined
  #closed = false

  constructor (options: RedisPresenceOptions) {
    this.#options = options
    this.#commands = options.commands
    this.#keys = options.keys
  }

  /** From now on, presence written is this node's. */
  start (nodeId: string): void {
    this.#nodeId = nodeId
  }

  /** Whether a user has a connection on this node. */
  hostsUser (userId: string): boolean {
    return this.#local.has(userId)
  }

  /** Records the connection locally at once; a Redis failure is repaired when Redis returns. */
  async add (userId: string, connectionId: string): Promise<void> {
    this.#local.add(userId, connectionId)
    this.#options.onChange()
    try {
      const self = this.#self()
      // Issued together so a removal that follows is ordered after them on each key; the user set goes
      // first, so a crash between the two leaves nothing a reaper cannot find.
      await this.#write(userId, (client) => Promise.all([
        client.sadd(this.#keys.nodeUsers(self), userId),
        client.hset(this.#keys.presence(userId), connectionId, self)
      ]))
    } catch (err) {
      this.#options.onWriteFailed()
      this.#options.log.warn({ err, userId, connectionId }, 'redis router: presence not written; it is republished when Redis returns')
    }
  }

  async remove (userId: string, connectionId: string): Promise<void> {
    if (!this.#local.delete(userId, connectionId)) return
    const last = !this.#local.has(userId)
    this.#options.onChange()
    try {
      const self = this.#self()
      await this.#write(userId, (client) => Promise.all([
        client.hdel(this.#keys.presence(userId), connectionId),
        last ? client.srem(this.#keys.nodeUsers(self), userId) : undefined
      ]))
    } catch (err) {
      this.#options.onWriteFailed()
      this.#options.log.warn({ err, userId, connectionId }, 'redis router: presence not removed; it is repaired when Redis returns')
    }
  }

  /** The user's connections on every node, by connection id. */
  async entries (userId: string): Promise<PresenceEntry[]> {
    const entries = await this.#commands.forUser(userId, (client) => client.hgetall(this.#keys.presence(userId)))
    return Object.entries(entries)
      .map(([connectionId, nodeId]) => ({ connectionId, nodeId }))
      .sort((a, b) => a.connectionId.localeCompare(b.connectionId))
  }

  /** The nodes that host the user (read on the user's connection, so it follows the user's writes). */
  async nodesOf (userId: string): Promise<Set<string>> {
    const entries = await this.#commands.forUser(userId, (client) => client.hgetall(this.#keys.presence(userId)))
    return new Set(Object.values(entries))
  }

  /** Makes Redis presence match this node's connections (adds missing entries, drops stale ones), then `afterSync`. */
  async sync (): Promise<void> {
    await this.#sync()
    if (!this.#closed) this.#options.afterSync()
  }

  async #sync (): Promise<void> {
    const self = this.#self()
    const users = new Set(this.#local.keys())
    for await (const members of this.#scanSet(this.#keys.nodeUsers(self))) {
      for (const userId of members) users.add(userId)
    }
    for (const batch of chunks([...users], BATCH)) {
      if (this.#closed) return
      await Promise.all(batch.map((userId) => this.#write(userId, async (client) => {
        const key = this.#keys.presence(userId)
        const entries = await client.hgetall(key)
        // Decided and issued on the user's connection without awaiting in between, so add/remove
        // calls that follow stay ordered after it.
        const local = [...this.#local.values(userId)]
        const stale = Object.entries(entries).filter(([connectionId, nodeId]) => nodeId === self && !local.includes(connectionId))
        await Promise.all([
          stale.length > 0 ? client.hdel(key, ...stale.map(([connectionId]) => connectionId)) : undefined,
          local.length > 0 ? client.sadd(this.#keys.nodeUsers(self), userId) : client.srem(this.#keys.nodeUsers(self), userId),
          local.length > 0 ? client.hset(key, Object.fromEntries(local.map((connectionId) => [connectionId, self]))) : undefined
        ])
      })))
    }
  }

  /**
   * Removes every presence entry of `nodeId` (found through its user set), then the set itself; all on
   * connection 0: the node is dead, or it is this one with no presence write left in flight.
   */
  async purgeNode (nodeId: string): Promise<number> {
    let removed = 0
    for await (const members of this.#scanSet(this.#keys.nodeUsers(nodeId))) {
      for (const batch of chunks(members, BATCH)) {
        const counts = await this.#commands.forNode((client) =>
          Promise.all(batch.map((userId) => runScript(client, 'wscReapPresence', [this.#keys.presence(userId)], [nodeId]))))
        removed += counts.reduce<number>((sum, n) => sum + Number(n), 0)
      }
    }
    await this.#commands.forNode((client) => client.del(this.#keys.nodeUsers(nodeId)))
    return removed
  }

  /** Stops writing; resolves when the writes in flight have settled (so a purge after it finds them). */
  async close (): Promise<void> {
    this.#closed = true
    await Promise.allSettled([...this.#writes])
    this.#local.clear()
  }

  #self (): string {
    if (this.#nodeId === undefined) throw new UnavailableError('the Redis router has not started')
    if (this.#closed) throw new UnavailableError('the Redis router is closed')
    return this.#nodeId
  }

  /** A write on the user's connection, tracked so that deregistering waits for it. */
  async #write<T> (userId: string, fn: (client: RedisClient) => Promise<T>): Promise<T> {
    const write = this.#commands.forUser(userId, fn)
    this.#writes.add(write)
    try {
      return await write
    } finally {
      this.#writes.delete(write)
    }
  }

  async * #scanSet (key: string): AsyncGenerator<string[]> {
    let cursor = '0'
    do {
      const [next, members] = await this.#commands.forNode((client) => client.sscan(key, cursor, 'COUNT', SCAN_COUNT))
      cursor = next
      if (members.length > 0) yield members
    } while (cursor !== '0')
  }
}
