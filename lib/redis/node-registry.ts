/**
 * The node registry in Redis: this node's entry (`nodes:<id>`, rewritten every heartbeat with a TTL of
 * three) and its score in `node-index`, discovery of the live nodes, and the reaper that removes the
 * presence of nodes that stopped without deregistering.
 */
import { randomBytes } from 'node:crypto'
import { NodeIdInUseError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { LocalNode, NodeInfo } from '../router/router.js'
import type { RedisClient, RedisCommandPool } from './command-pool.js'
import type { RedisKeys } from './keys.js'
import type { RedisPresence } from './presence.js'
import { runScript } from './scripts.js'

/** Delay that coalesces registry rewrites after connection churn, so `connections` stays fresh. */
const REFRESH_DELAY = 50

export interface RedisNodeRegistryOptions {
  commands: RedisCommandPool
  keys: RedisKeys
  presence: RedisPresence
  /** Rewrite period of the entry (ms); its TTL is 3× this. */
  heartbeatInterval: number
  /** How often the live node list is read (ms). */
  discoveryInterval: number
  log: Logger
}

/** This node's registry entry, and the view of every other one. */
export class RedisNodeRegistry {
  readonly #options: RedisNodeRegistryOptions
  readonly #commands: RedisCommandPool
  readonly #keys: RedisKeys
  readonly #ttl: number
  #node: LocalNode | undefined
  #startedAt = 0
  /** The entry was written once: a missing one later means it expired. */
  #registered = false
  #closed = false
  #knownNodes: string[] = []
  /** This process, as its registry entry names it. */
  readonly #instance = randomBytes(8).toString('hex')
  #collisionLogged = false
  #discoveryTimer: NodeJS.Timeout | undefined
  #reaperTimer: NodeJS.Timeout | undefined
  #refreshTimer: NodeJS.Timeout | undefined

  constructor (options: RedisNodeRegistryOptions) {
    this.#options = options
    this.#commands = options.commands
    this.#keys = options.keys
    this.#ttl = 3 * options.heartbeatInterval
  }

  /** Live nodes seen by the last discovery. */
  get knownNodes (): number {
    return this.#knownNodes.length
  }

  /**
   * Registers this node. An entry under the same id from another process that still heartbeats is a
   * collision: start-up stops, naming it. One that stopped heartbeating is what a crashed process left
   * (a StatefulSet pod restarted under its name): its presence is purged and the id taken over.
   */
  async register (node: LocalNode): Promise<void> {
    this.#node = node
    this.#startedAt = Date.now()
    await this.#refuseLiveDuplicate(node.nodeId)
    await this.#options.presence.purgeNode(node.nodeId)
    await this.write()
  }

  /** Watches an entry of another process under our id for up to 1.5 heartbeats; if it is rewritten, that process lives. */
  async #refuseLiveDuplicate (nodeId: string): Promise<void> {
    const first = await this.#entry(nodeId)
    if (first === undefined || first.instance === this.#instance) return
    const deadline = Date.now() + 1.5 * this.#options.heartbeatInterval + 100
    const step = Math.max(20, Math.round(this.#options.heartbeatInterval / 5))
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, step).unref())
      const now = await this.#entry(nodeId)
      if (now === undefined) return
      if (now.heartbeatAt !== first.heartbeatAt) {
        throw new NodeIdInUseError(`node id ${nodeId} is in use by another live process (${now.ip}:${now.port ?? '?'}, started ${new Date(now.startedAt).toISOString()}): give each process its own id (POD_NAME, which wins over HOSTNAME; server.node_id)`)
      }
    }
  }

  async #entry (nodeId: string): Promise<NodeInfo | undefined> {
    const text = await this.#commands.forNode((client) => client.get(this.#keys.node(nodeId)))
    if (text === null) return undefined
    try {
      return JSON.parse(text) as NodeInfo
    } catch {
      return undefined
    }
  }

  /** Starts discovery and the reaper. */
  startTimers (): void {
    this.#discoveryTimer = setInterval(() => this.#discover(), this.#options.discoveryInterval).unref()
    this.#scheduleReaper(0)
    this.#discover()
  }

  /** Rewrites this node's entry and index score; republishes presence if the entry had expired. */
  async write (): Promise<void> {
    const node = this.#node
    if (node === undefined) return
    const now = Date.now()
    const info: NodeInfo = {
      id: node.nodeId,
      ip: node.ip,
      port: node.port(),
      startedAt: this.#startedAt,
      heartbeatAt: now,
      connections: node.connections(),
      version: node.version,
      instance: this.#instance
    }
    const previous = await this.#commands.forNode(async (client) => {
      const entry = await client.set(this.#keys.node(node.nodeId), JSON.stringify(info), 'PX', this.#ttl, 'GET')
      await client.zadd(this.#keys.nodeIndex, now, node.nodeId)
      return entry
    })
    if (previous === null && this.#registered) {
      // The entry expired (a pause longer than its TTL, or Redis lost it): peers may have reaped our presence.
      this.#options.log.warn({ nodeId: node.nodeId }, 'redis router: registry entry had expired; republishing presence')
      await this.#options.presence.sync()
    } else if (previous !== null && this.#registered && !previous.includes(`"instance":"${this.#instance}"`) && !this.#collisionLogged) {
      this.#collisionLogged = true
      this.#options.log.error({ nodeId: node.nodeId }, 'redis router: another process writes this node id too: give each process its own id (POD_NAME, which wins over HOSTNAME; server.node_id)')
    }
    this.#registered = true
  }

  /** Rewrites the entry shortly (connections changed), once for a burst of changes. */
  refreshSoon (): void {
    if (this.#refreshTimer !== undefined || !this.#registered || this.#closed) return
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = undefined
      if (this.#commands.nodeClient.status === 'ready') this.write().catch(() => {})
    }, REFRESH_DELAY).unref()
  }

  /** Live nodes, by id. */
  async nodes (): Promise<NodeInfo[]> {
    const ids = await this.#commands.forNode((client) => client.zrange(this.#keys.nodeIndex, '0', '-1'))
    const entries = await this.#commands.forNode((client) => Promise.all(ids.map((id) => client.get(this.#keys.node(id)))))
    const nodes: NodeInfo[] = []
    for (const entry of entries) {
      if (entry === null) continue
      try {
        nodes.push(JSON.parse(entry) as NodeInfo)
      } catch {}
    }
    return nodes.sort((a, b) => a.id.localeCompare(b.id))
  }

  /** Stops the timers. */
  close (): void {
    this.#closed = true
    clearInterval(this.#discoveryTimer)
    clearTimeout(this.#reaperTimer)
    clearTimeout(this.#refreshTimer)
  }

  /** Removes this node's entry and everything it owned (call after presence settled its writes). */
  async deregister (): Promise<void> {
    const nodeId = this.#node?.nodeId
    if (nodeId === undefined) return
    await this.#commands.forNode(async (client) => {
      await client.del(this.#keys.node(nodeId))
      await client.zrem(this.#keys.nodeIndex, nodeId)
    })
    await this.#options.presence.purgeNode(nodeId)
  }

  /**
   * Reaps nodes whose registry entry expired: their presence entries, user set and index entry. Runs
   * every heartbeat, and also just after the next entry is due to expire, so a crashed node's presence
   * is gone about 3 heartbeats after its last one.
   */
  #scheduleReaper (delay: number): void {
    if (this.#closed) return
    this.#reaperTimer = setTimeout(() => {
      this.#reap()
        .catch((err: unknown) => {
          this.#options.log.warn({ err }, 'redis router: reaping failed; retried')
          return this.#options.heartbeatInterval
        })
        .then((next) => this.#scheduleReaper(next), () => {})
    }, delay).unref()
  }

  async #reap (): Promise<number> {
    const heartbeat = this.#options.heartbeatInterval
    if (this.#commands.nodeClient.status !== 'ready') return heartbeat
    const self = this.#node?.nodeId
    const now = Date.now()
    const node = <T>(fn: (client: RedisClient) => Promise<T>): Promise<T> => this.#commands.forNode(fn)
    const stale = await node((client) => client.zrangebyscore(this.#keys.nodeIndex, '-inf', now - this.#ttl, 'WITHSCORES'))
    for (let i = 0; i + 1 < stale.length; i += 2) {
      const nodeId = stale[i] as string
      const score = stale[i + 1] as string
      if (nodeId === self) continue
      // The key's TTL runs on Redis's clock: a live node on a skewed clock still has its key.
      if (await node((client) => client.exists(this.#keys.node(nodeId))) === 1) continue
      const lease = Date.now()
      if (Number(await node((client) => runScript(client, 'wscClaimDeadNode', [this.#keys.nodeIndex], [nodeId, score, lease]))) !== 1) continue
      const removed = await this.#options.presence.purgeNode(nodeId)
      await node((client) => runScript(client, 'wscReleaseDeadNode', [this.#keys.nodeIndex], [nodeId, lease]))
      this.#options.log.info({ nodeId, presenceEntries: removed }, 'redis router: reaped a node that stopped without deregistering')
    }
    const oldest = await node((client) => client.zrange(this.#keys.nodeIndex, '0', '1', 'WITHSCORES'))
    let next = heartbeat
    for (let i = 0; i + 1 < oldest.length; i += 2) {
      if (oldest[i] === self) continue
      const due = Number(oldest[i + 1]) + this.#ttl - Date.now() + 20
      next = Math.min(next, Math.max(due, 20))
      break
    }
    return next
  }

  #discover (): void {
    if (this.#commands.nodeClient.status !== 'ready') return
    this.#commands.forNode((client) => client.zrange(this.#keys.nodeIndex, '0', '-1')).then((ids) => {
      const before = new Set(this.#knownNodes)
      const joined = ids.filter((id) => !before.has(id))
      const left = this.#knownNodes.filter((id) => !ids.includes(id))
      if (joined.length > 0 || left.length > 0) this.#options.log.info({ nodes: ids.length, joined, left }, 'redis router: cluster membership changed')
      this.#knownNodes = ids
    }, (err: unknown) => this.#options.log.debug({ err }, 'redis router: discovery failed'))
  }
}
