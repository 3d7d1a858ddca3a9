import { createHash } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { UnavailableError } from './errors.js'
import { RedisCommandPool, type RedisClient } from './redis-command-pool.js'
import type { RedisMode } from './redis-connection.js'
import { RedisKeys } from './redis-keys.js'
import { decodeChannelMessage, encodeProbe, encodeRoutedEvent } from './routed-event-codec.js'
import {
  parseConnectionId,
  type LocalNode, type NodeInfo, type PresenceEntry, type RoutedEvent, type Router, type RouterStatus
} from './router.js'
import type { Logger } from './wsc-node.js'

export interface RedisRouterOptions {
  mode: RedisMode
  /**
   * Command connections (`redis.pool_size`; a single client is a pool of one): a user's commands on the
   * user's connection, node-scoped ones on connection 0. The router never closes them.
   */
  commands: RedisCommandPool | RedisClient
  /** Dedicated Pub/Sub client (a Cluster one with `shardedSubscribers: true`); never closed by the router. */
  subscriber: Redis | Cluster
  /** Prefix of every key and channel (`redis.prefix`). */
  prefix: string
  /** `distributed.heartbeat_interval` in ms: registry rewrite period; the entry's TTL is 3× this. */
  heartbeatInterval: number
  /** `distributed.node_discovery_interval` in ms: how often the live node list is refreshed and logged. */
  discoveryInterval: number
  /** Pub/Sub loopback probe period in ms; default: the heartbeat interval, at most 5 s. */
  probeInterval?: number
  /** How long `start` waits for Redis before failing with `WSC_ERR_UNAVAILABLE`; default 10 s. */
  connectTimeout?: number
  log: Logger
}

interface Script { lua: string, sha: string }

type Listener = (...args: any[]) => void

function script (lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') }
}

/** Removes a user's presence entries that point at one node. KEYS[1] presence hash, ARGV[1] nodeId. */
const REAP_PRESENCE = script(`
local fields = redis.call('HGETALL', KEYS[1])
local removed = 0
for i = 1, #fields, 2 do
  if fields[i + 1] == ARGV[1] then
    redis.call('HDEL', KEYS[1], fields[i])
    removed = removed + 1
  end
end
return removed`)

/**
 * Claims a dead node for reaping: moves its index score from the stale value to a lease (now), so one
 * survivor reaps it, and another resumes if that one dies before it finished (the lease goes stale too).
 */
const CLAIM_DEAD_NODE = script(`
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
return 0`)

/** Drops a reaped node from the index unless it came back meanwhile (its score is no longer our lease). */
const RELEASE_DEAD_NODE = script(`
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0`)

const SCAN_COUNT = 500
const BATCH = 100
/** Delay that coalesces registry rewrites after connection churn, so `connections` stays fresh. */
const REGISTRY_REFRESH_DELAY = 50

const errorMessage = (err: unknown): string => err instanceof Error ? err.message : String(err)

function unavailable (err: unknown): Error {
  if (err instanceof UnavailableError) return err
  const wrapped = new UnavailableError(`Redis: ${errorMessage(err)}`)
  wrapped.cause = err
  return wrapped
}

function chunks<T> (items: T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/**
 * KEYS presence; ARGV own node id, node channel prefix, message → nodes published to. Standalone and
 * Sentinel only: publishes the routed event to the channel of every other node that hosts the user.
 */
const ROUTE_TO_USER = `
local seen = {}
local published = 0
for _, nodeId in ipairs(redis.call('HVALS', KEYS[1])) do
  if nodeId ~= ARGV[1] and not seen[nodeId] then
    seen[nodeId] = true
    redis.call('PUBLISH', ARGV[2] .. nodeId, ARGV[3])
    published = published + 1
  end
end
return published
`

interface RouteToUserClient {
  wscRouteToUser (presenceKey: string, nodeId: string, channelPrefix: string, message: string): Promise<number>
}

/**
 * Cross-node routing over Redis (standalone, Sentinel or Cluster): the node registry, cluster-wide
 * presence and interest-based Pub/Sub. A send reaches only the nodes that host a target: a user's
 * nodes (from presence) on their node channels, a room's nodes on the room channel they subscribe to
 * while they have a local member, every node on the broadcast channel.
 *
 * While Redis is unreachable a send delivers to this node's own connections directly and then rejects
 * with `WSC_ERR_UNAVAILABLE`: the caller learns that other nodes were not reached.
 */
export class RedisRouter implements Router {
  readonly keys: RedisKeys
  readonly mode: RedisMode
  /** Pub/Sub messages this node received, probes excluded (interest-based routing keeps this low). */
  received = 0
  readonly #commands: RedisCommandPool
  readonly #subscriber: Redis | Cluster
  readonly #log: Logger
  readonly #heartbeatInterval: number
  readonly #ttl: number
  readonly #discoveryInterval: number
  readonly #probeInterval: number
  readonly #probeTimeout: number
  readonly #connectTimeout: number
  #node: LocalNode | undefined
  #onEvent: ((event: RoutedEvent) => void) | undefined
  #startedAt = 0
  #started = false
  #closed = false
  /** This node's connections by user: the truth that presence in Redis is rebuilt from. */
  readonly #local = new Map<string, Set<string>>()
  /** Channels this node wants, re-subscribed whenever the Pub/Sub connection returns. */
  readonly #channels = new Set<string>()
  readonly #rooms = new Set<string>()
  #knownNodes: string[] = []
  #heartbeatTimer: NodeJS.Timeout | undefined
  #reaperTimer: NodeJS.Timeout | undefined
  #discoveryTimer: NodeJS.Timeout | undefined
  #probeTimer: NodeJS.Timeout | undefined
  #registrySoon: NodeJS.Timeout | undefined
  #registered = false
  #commandLost = false
  #subscriberLost = false
  #probeSeq = 0
  #probe: { n: number, sentAt: number } | undefined
  #probeLatencyMs: number | null = null
  #probeAt: number | null = null
  #probeFailure: string | undefined
  #probeWaiters: Array<() => void> = []
  readonly #listeners: Array<[Redis | Cluster, string, Listener]> = []
  /** Presence writes in flight, awaited before deregistering: they may run on other connections than the purge. */
  readonly #presenceWrites = new Set<Promise<unknown>>()

  constructor (options: RedisRouterOptions) {
    this.mode = options.mode
    this.keys = new RedisKeys(options.prefix)
    this.#commands = RedisCommandPool.of(options.commands)
    if (this.mode !== 'cluster') {
      for (const client of this.#commands.clients) {
        if (typeof (client as unknown as Record<string, unknown>).wscRouteToUser !== 'function') client.defineCommand('wscRouteToUser', { numberOfKeys: 1, lua: ROUTE_TO_USER })
      }
    }
    this.#subscriber = options.subscriber
    this.#log = options.log
    this.#heartbeatInterval = options.heartbeatInterval
    this.#ttl = 3 * options.heartbeatInterval
    this.#discoveryInterval = options.discoveryInterval
    this.#probeInterval = options.probeInterval ?? Math.min(options.heartbeatInterval, 5000)
    this.#probeTimeout = Math.max(this.#probeInterval, 1000)
    this.#connectTimeout = options.connectTimeout ?? 10_000
  }

  get #nodeId (): string {
    return this.#node?.nodeId ?? ''
  }

  /** Connection 0, which node-scoped commands use. */
  get #nodeClient (): RedisClient {
    return this.#commands.nodeClient
  }

  async start (node: LocalNode, onEvent: (event: RoutedEvent) => void): Promise<void> {
    this.#node = node
    this.#onEvent = onEvent
    this.#startedAt = Date.now()
    this.#listen(this.#subscriber, this.mode === 'cluster' ? 'smessage' : 'message', (channel: string, message: string) => this.#onMessage(channel, message))
    for (const client of this.#commands.clients) {
      this.#listen(client, 'ready', () => this.#onCommandReady())
      this.#listen(client, 'close', () => { this.#commandLost = true })
    }
    this.#listen(this.#subscriber, 'ready', () => this.#onSubscriberReady())
    this.#listen(this.#subscriber, 'close', () => { this.#subscriberLost = true })
    // min_idle_conns of the command connections; the others finish connecting in the background.
    await Promise.all([this.#commands.ready(this.#connectTimeout, `Redis (${this.mode})`), this.#whenReady(this.#subscriber)])
    try {
      // Entries left by an earlier process under this id (a StatefulSet pod that crashed) are ghosts.
      await this.#purgeNode(this.#nodeId)
      await this.#writeRegistry()
      this.#channels.add(this.keys.nodeChannel(this.#nodeId))
      this.#channels.add(this.keys.broadcastChannel)
      await this.#subscribe([...this.#channels])
    } catch (err) {
      throw unavailable(err)
    }
    this.#commandLost = false
    this.#subscriberLost = false
    this.#started = true
    this.#heartbeatTimer = setInterval(() => this.#heartbeat(), this.#heartbeatInterval).unref()
    this.#discoveryTimer = setInterval(() => this.#discover(), this.#discoveryInterval).unref()
    this.#probeTimer = setInterval(() => this.#sendProbe(), this.#probeInterval).unref()
    this.#scheduleReaper(0)
    this.#discover()
    if (!await this.#probeOnce()) {
      this.#log.warn({ detail: this.status().detail }, 'redis router: the first Pub/Sub loopback probe did not come back')
    }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const wasStarted = this.#started
    this.#started = false
    for (const timer of [this.#heartbeatTimer, this.#discoveryTimer, this.#probeTimer]) clearInterval(timer)
    clearTimeout(this.#reaperTimer)
    clearTimeout(this.#registrySoon)
    for (const [client, event, listener] of this.#listeners) client.off(event, listener)
    this.#listeners.length = 0
    this.#wakeProbeWaiters()
    const channels = [...this.#channels]
    this.#channels.clear()
    this.#rooms.clear()
    this.#onEvent = undefined
    if (wasStarted) {
      const results = await Promise.allSettled([
        this.#unsubscribe(channels),
        this.#deregister()
      ])
      for (const result of results) {
        if (result.status === 'rejected') this.#log.warn({ err: result.reason }, 'redis router: could not deregister cleanly; peers will reap this node')
      }
    }
    this.#local.clear()
  }

  status (): RouterStatus {
    const base = { probeLatencyMs: this.#probeLatencyMs, probeAt: this.#probeAt }
    if (!this.#started) return { ...base, up: false, detail: `redis ${this.mode}: ${this.#closed ? 'closed' : 'not started'}` }
    const problems = this.#commands.problems()
    if (this.#subscriber.status !== 'ready') problems.push(`Pub/Sub connection ${this.#subscriber.status}`)
    const probe = this.#probe
    if (probe !== undefined && Date.now() - probe.sentAt > this.#probeTimeout) {
      problems.push(`Pub/Sub loopback probe not back after ${Date.now() - probe.sentAt} ms`)
    } else if (this.#probeFailure !== undefined) {
      problems.push(this.#probeFailure)
    } else if (this.#probeAt === null) {
      problems.push('Pub/Sub loopback not verified yet')
    }
    if (problems.length > 0) return { ...base, up: false, detail: `redis ${this.mode}: ${problems.join('; ')}` }
    const connecting = this.#commands.connecting
    const pool = connecting === 0 ? '' : `; ${connecting} of ${this.#commands.size} command connections still connecting`
    return { ...base, up: true, detail: `redis ${this.mode}: Pub/Sub loop verified in ${this.#probeLatencyMs} ms; ${this.#knownNodes.length} nodes${pool}` }
  }

  // ---- presence ----

  /** Records the connection locally at once; a Redis failure is repaired when Redis returns. */
  async addPresence (userId: string, connectionId: string): Promise<void> {
    let connections = this.#local.get(userId)
    if (connections === undefined) this.#local.set(userId, connections = new Set())
    connections.add(connectionId)
    this.#refreshRegistrySoon()
    try {
      this.#ensureUp()
      // Issued together so a removal that follows is ordered after them on each key; the user set goes
      // first, so a crash between the two leaves nothing a reaper cannot find.
      await this.#writePresence(userId, (client) => Promise.all([
        client.sadd(this.keys.nodeUsers(this.#nodeId), userId),
        client.hset(this.keys.presence(userId), connectionId, this.#nodeId)
      ]))
    } catch (err) {
      this.#commandLost = true
      this.#log.warn({ err, userId, connectionId }, 'redis router: presence not written; it is republished when Redis returns')
    }
  }

  async removePresence (userId: string, connectionId: string): Promise<void> {
    const connections = this.#local.get(userId)
    if (connections?.delete(connectionId) !== true) return
    const last = connections.size === 0
    if (last) this.#local.delete(userId)
    this.#refreshRegistrySoon()
    try {
      this.#ensureUp()
      await this.#writePresence(userId, (client) => Promise.all([
        client.hdel(this.keys.presence(userId), connectionId),
        last ? client.srem(this.keys.nodeUsers(this.#nodeId), userId) : undefined
      ]))
    } catch (err) {
      this.#commandLost = true
      this.#log.warn({ err, userId, connectionId }, 'redis router: presence not removed; it is repaired when Redis returns')
    }
  }

  async presence (userId: string): Promise<PresenceEntry[]> {
    const entries = await this.#call(() => this.#commands.forUser(userId, (client) => client.hgetall(this.keys.presence(userId))))
    return Object.entries(entries)
      .map(([connectionId, nodeId]) => ({ connectionId, nodeId }))
      .sort((a, b) => a.connectionId.localeCompare(b.connectionId))
  }

  async onlineCount (): Promise<number> {
    return (await this.nodes()).reduce((sum, node) => sum + node.connections, 0)
  }

  async nodes (): Promise<NodeInfo[]> {
    const ids = await this.#call(() => this.#commands.forNode((client) => client.zrange(this.keys.nodeIndex, '0', '-1')))
    const entries = await this.#call(() => this.#commands.forNode((client) => Promise.all(ids.map((id) => client.get(this.keys.node(id))))))
    const nodes: NodeInfo[] = []
    for (const entry of entries) {
      if (entry === null) continue
      try {
        nodes.push(JSON.parse(entry) as NodeInfo)
      } catch {}
    }
    return nodes.sort((a, b) => a.id.localeCompare(b.id))
  }

  // ---- routing ----

  async toUser (userId: string, event: RoutedEvent): Promise<void> {
    if (this.#local.has(userId)) this.#deliverLocally(event)
    // Presence read and publishes on the user's connection: concurrent sends to one user leave in send order.
    if (this.mode !== 'cluster') {
      // One round trip: the script reads the presence and publishes to every other hosting node.
      const message = encodeRoutedEvent(this.#nodeId, event)
      await this.#call(() => this.#commands.forUser(userId, (client) =>
        (client as unknown as RouteToUserClient).wscRouteToUser(this.keys.presence(userId), this.#nodeId, this.keys.nodeChannel(''), message)))
      return
    }
    // Sharded Pub/Sub cannot publish to another slot's channel from a script: read, then publish.
    const entries = await this.#call(() => this.#commands.forUser(userId, (client) => client.hgetall(this.keys.presence(userId))))
    const remote = new Set(Object.values(entries))
    remote.delete(this.#nodeId)
    if (remote.size === 0) return
    const message = encodeRoutedEvent(this.#nodeId, event)
    await this.#call(() => this.#commands.forUser(userId, (client) => Promise.all([...remote].map((nodeId) => this.#publish(client, this.keys.nodeChannel(nodeId), message)))))
  }

  async toRoom (room: string, event: RoutedEvent): Promise<void> {
    // Local members get it back through the room channel this node subscribes to; directly only if that fails.
    const channel = this.keys.roomChannel(room)
    await this.#publishOrDeliverLocally((message) => this.#commands.forRoom(room, (client) => this.#publish(client, channel, message)), event, this.#rooms.has(room))
  }

  async toConnection (connectionId: string, event: RoutedEvent): Promise<void> {
    const nodeId = parseConnectionId(connectionId)?.nodeId
    if (nodeId === undefined) return
    if (nodeId === this.#nodeId) {
      this.#deliverLocally(event)
      return
    }
    const message = encodeRoutedEvent(this.#nodeId, event)
    await this.#call(() => this.#commands.forNode((client) => this.#publish(client, this.keys.nodeChannel(nodeId), message)))
  }

  async toAll (event: RoutedEvent): Promise<void> {
    const channel = this.keys.broadcastChannel
    await this.#publishOrDeliverLocally((message) => this.#commands.forNode((client) => this.#publish(client, channel, message)), event, true)
  }

  async subscribeRoom (room: string): Promise<void> {
    this.#rooms.add(room)
    await this.#subscribe([this.keys.roomChannel(room)])
  }

  async unsubscribeRoom (room: string): Promise<void> {
    if (!this.#rooms.delete(room)) return
    await this.#unsubscribe([this.keys.roomChannel(room)])
  }

  // ---- internals ----

  #listen (client: Redis | Cluster, event: string, listener: Listener): void {
    client.on(event, listener)
    this.#listeners.push([client, event, listener])
  }

  #whenReady (client: Redis | Cluster): Promise<void> {
    if (client.status === 'ready') return Promise.resolve()
    return new Promise((resolve, reject) => {
      const onReady = (): void => {
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        client.off('ready', onReady)
        reject(new UnavailableError(`Redis (${this.mode}) not reachable within ${this.#connectTimeout} ms: connection ${client.status}`))
      }, this.#connectTimeout).unref()
      client.once('ready', onReady)
    })
  }

  /** A command on a connection that is down rejects at once with `WSC_ERR_UNAVAILABLE` (in the pool). */
  #ensureUp (): void {
    if (this.#node === undefined) throw new UnavailableError('the Redis router has not started')
    if (this.#closed) throw new UnavailableError('the Redis router is closed')
  }

  /** A presence write on the user's connection, tracked so that deregistering waits for it. */
  async #writePresence<T> (userId: string, fn: (client: RedisClient) => Promise<T>): Promise<T> {
    const write = this.#commands.forUser(userId, fn)
    this.#presenceWrites.add(write)
    try {
      return await write
    } finally {
      this.#presenceWrites.delete(write)
    }
  }

  /** Runs a Redis call; any failure becomes `WSC_ERR_UNAVAILABLE`. */
  async #call<T> (fn: () => Promise<T>): Promise<T> {
    try {
      this.#ensureUp()
      return await fn()
    } catch (err) {
      throw unavailable(err)
    }
  }

  #publish (client: RedisClient, channel: string, message: string): Promise<unknown> {
    return this.mode === 'cluster' ? client.spublish(channel, message) : client.publish(channel, message)
  }

  async #publishOrDeliverLocally (publish: (message: string) => Promise<unknown>, event: RoutedEvent, hostsTarget: boolean): Promise<void> {
    try {
      this.#ensureUp()
      await publish(encodeRoutedEvent(this.#nodeId, event))
    } catch (err) {
      if (hostsTarget) this.#deliverLocally(event)
      throw unavailable(err)
    }
  }

  #deliverLocally (event: RoutedEvent): void {
    try {
      this.#onEvent?.(event)
    } catch (err) {
      this.#log.error({ err, kind: event.kind }, 'redis router: local delivery failed')
    }
  }

  #onMessage (_channel: string, message: string): void {
    const decoded = decodeChannelMessage(message)
    if (decoded === undefined) {
      this.#log.warn({ bytes: message.length }, 'redis router: ignored a channel message this version cannot read')
      return
    }
    if ('probe' in decoded) {
      if (decoded.origin === this.#nodeId && this.#probe?.n === decoded.probe) this.#probeReturned(this.#probe.sentAt)
      return
    }
    this.received++
    this.#deliverLocally(decoded.event)
  }

  async #subscribe (channels: string[]): Promise<void> {
    for (const channel of channels) this.#channels.add(channel)
    if (this.#subscriber.status !== 'ready' || channels.length === 0) return
    try {
      if (this.mode === 'cluster') {
        await Promise.all(channels.map((channel) => this.#subscriber.ssubscribe(channel)))
      } else {
        await this.#subscriber.subscribe(...channels)
      }
    } catch (err) {
      this.#subscriberLost = true
      this.#log.warn({ err, channels: channels.length }, 'redis router: subscribe failed; retried when the Pub/Sub connection returns')
    }
  }

  async #unsubscribe (channels: string[]): Promise<void> {
    for (const channel of channels) this.#channels.delete(channel)
    if (this.#subscriber.status !== 'ready' || channels.length === 0) return
    if (this.mode === 'cluster') {
      await Promise.all(channels.map((channel) => this.#subscriber.sunsubscribe(channel)))
    } else {
      await this.#subscriber.unsubscribe(...channels)
    }
  }

  /** Recovers once every command connection is back: presence is republished on all of them. */
  #onCommandReady (): void {
    if (!this.#started || !this.#commandLost || !this.#commands.allReady) return
    this.#commandLost = false
    this.#log.info({ mode: this.mode }, 'redis router: Redis is back; re-registering and republishing presence')
    this.#writeRegistry()
      .then(() => this.#syncPresence())
      .catch((err: unknown) => {
        this.#commandLost = true
        this.#log.warn({ err }, 'redis router: recovery after reconnect failed; retried at the next heartbeat')
      })
  }

  #onSubscriberReady (): void {
    if (!this.#started || !this.#subscriberLost) return
    this.#subscriberLost = false
    this.#log.info({ channels: this.#channels.size }, 'redis router: Pub/Sub is back; re-subscribing')
    this.#subscribe([...this.#channels]).then(() => this.#sendProbe(), () => {})
  }

  /** Rewrites this node's registry entry and index score; republishes presence if the entry had expired. */
  async #writeRegistry (): Promise<void> {
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
      version: node.version
    }
    const previous = await this.#commands.forNode(async (client) => {
      const entry = await client.set(this.keys.node(node.nodeId), JSON.stringify(info), 'PX', this.#ttl, 'GET')
      await client.zadd(this.keys.nodeIndex, now, node.nodeId)
      return entry
    })
    if (previous === null && this.#registered) {
      // The entry expired (a pause longer than its TTL, or Redis lost it): peers may have reaped our presence.
      this.#log.warn({ nodeId: node.nodeId }, 'redis router: registry entry had expired; republishing presence')
      await this.#syncPresence()
    }
    this.#registered = true
  }

  #heartbeat (): void {
    if (this.#subscriberLost && this.#subscriber.status === 'ready') {
      // A subscribe failed while the connection stayed up: no 'ready' will come to retry it.
      this.#subscriberLost = false
      this.#subscribe([...this.#channels]).catch(() => {})
    }
    if (this.#nodeClient.status !== 'ready') return
    // Presence is republished only when every connection can take its users' writes.
    const recovering = this.#commandLost && this.#commands.allReady
    if (recovering) this.#commandLost = false
    this.#writeRegistry()
      .then(() => recovering ? this.#syncPresence() : undefined)
      .catch((err: unknown) => {
        this.#commandLost ||= recovering
        this.#log.warn({ err }, 'redis router: heartbeat failed')
      })
  }

  #refreshRegistrySoon (): void {
    if (this.#registrySoon !== undefined || !this.#started) return
    this.#registrySoon = setTimeout(() => {
      this.#registrySoon = undefined
      if (this.#nodeClient.status === 'ready') this.#writeRegistry().catch(() => {})
    }, REGISTRY_REFRESH_DELAY).unref()
  }

  /** Makes Redis presence match this node's connections: adds missing entries, drops stale ones. */
  async #syncPresence (): Promise<void> {
    const self = this.#nodeId
    const users = new Set(this.#local.keys())
    for await (const members of this.#scanSet(this.keys.nodeUsers(self))) {
      for (const userId of members) users.add(userId)
    }
    for (const batch of chunks([...users], BATCH)) {
      if (this.#closed) return
      await Promise.all(batch.map((userId) => this.#writePresence(userId, async (client) => {
        const key = this.keys.presence(userId)
        const entries = await client.hgetall(key)
        // Decided and issued on the user's connection without awaiting in between, so add/removePresence
        // calls that follow stay ordered after it.
        const local = [...this.#local.get(userId) ?? []]
        const stale = Object.entries(entries).filter(([connectionId, nodeId]) => nodeId === self && !local.includes(connectionId))
        await Promise.all([
          stale.length > 0 ? client.hdel(key, ...stale.map(([connectionId]) => connectionId)) : undefined,
          local.length > 0 ? client.sadd(this.keys.nodeUsers(self), userId) : client.srem(this.keys.nodeUsers(self), userId),
          local.length > 0 ? client.hset(key, Object.fromEntries(local.map((connectionId) => [connectionId, self]))) : undefined
        ])
      })))
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

  /**
   * Removes every presence entry of `nodeId` (found through its user set), then the set itself; all on
   * connection 0: the node is dead, or it is this one with no presence write left in flight.
   */
  async #purgeNode (nodeId: string): Promise<number> {
    let removed = 0
    for await (const members of this.#scanSet(this.keys.nodeUsers(nodeId))) {
      for (const batch of chunks(members, BATCH)) {
        const counts = await this.#commands.forNode((client) =>
          Promise.all(batch.map((userId) => this.#script(client, REAP_PRESENCE, [this.keys.presence(userId)], [nodeId]))))
        removed += counts.reduce<number>((sum, n) => sum + Number(n), 0)
      }
    }
    await this.#commands.forNode((client) => client.del(this.keys.nodeUsers(nodeId)))
    return removed
  }

  async #deregister (): Promise<void> {
    if (this.#nodeClient.status !== 'ready') throw new UnavailableError(`Redis is unreachable (connection ${this.#nodeClient.status})`)
    // A presence write still in flight on a user's connection could land after the purge on connection 0
    // scanned the user set, and leave an entry no reaper would ever find. No new one starts once closed.
    await Promise.allSettled([...this.#presenceWrites])
    const nodeId = this.#nodeId
    await this.#commands.forNode(async (client) => {
      await client.del(this.keys.node(nodeId))
      await client.zrem(this.keys.nodeIndex, nodeId)
    })
    await this.#purgeNode(nodeId)
  }

  async #script (client: RedisClient, s: Script, keys: string[], args: Array<string | number>): Promise<unknown> {
    try {
      return await client.evalsha(s.sha, keys.length, ...keys, ...args.map(String))
    } catch (err) {
      if (!errorMessage(err).startsWith('NOSCRIPT')) throw err
      return await client.eval(s.lua, keys.length, ...keys, ...args.map(String))
    }
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
          this.#log.warn({ err }, 'redis router: reaping failed; retried')
          return this.#heartbeatInterval
        })
        .then((next) => this.#scheduleReaper(next), () => {})
    }, delay).unref()
  }

  async #reap (): Promise<number> {
    if (this.#nodeClient.status !== 'ready') return this.#heartbeatInterval
    const now = Date.now()
    const node = <T>(fn: (client: RedisClient) => Promise<T>): Promise<T> => this.#commands.forNode(fn)
    const stale = await node((client) => client.zrangebyscore(this.keys.nodeIndex, '-inf', now - this.#ttl, 'WITHSCORES'))
    for (let i = 0; i + 1 < stale.length; i += 2) {
      const nodeId = stale[i] as string
      const score = stale[i + 1] as string
      if (nodeId === this.#nodeId) continue
      // The key's TTL runs on Redis's clock: a live node on a skewed clock still has its key.
      if (await node((client) => client.exists(this.keys.node(nodeId))) === 1) continue
      const lease = Date.now()
      if (Number(await node((client) => this.#script(client, CLAIM_DEAD_NODE, [this.keys.nodeIndex], [nodeId, score, lease]))) !== 1) continue
      const removed = await this.#purgeNode(nodeId)
      await node((client) => this.#script(client, RELEASE_DEAD_NODE, [this.keys.nodeIndex], [nodeId, lease]))
      this.#log.info({ nodeId, presenceEntries: removed }, 'redis router: reaped a node that stopped without deregistering')
    }
    const oldest = await node((client) => client.zrange(this.keys.nodeIndex, '0', '1', 'WITHSCORES'))
    let next = this.#heartbeatInterval
    for (let i = 0; i + 1 < oldest.length; i += 2) {
      if (oldest[i] === this.#nodeId) continue
      const due = Number(oldest[i + 1]) + this.#ttl - Date.now() + 20
      next = Math.min(next, Math.max(due, 20))
      break
    }
    return next
  }

  #discover (): void {
    if (this.#nodeClient.status !== 'ready') return
    this.#commands.forNode((client) => client.zrange(this.keys.nodeIndex, '0', '-1')).then((ids) => {
      const before = new Set(this.#knownNodes)
      const joined = ids.filter((id) => !before.has(id))
      const left = this.#knownNodes.filter((id) => !ids.includes(id))
      if (joined.length > 0 || left.length > 0) this.#log.info({ nodes: ids.length, joined, left }, 'redis router: cluster membership changed')
      this.#knownNodes = ids
    }, (err: unknown) => this.#log.debug({ err }, 'redis router: discovery failed'))
  }

  // ---- the Pub/Sub loopback probe ----

  #sendProbe (): void {
    if (!this.#started) return
    const now = Date.now()
    if (this.#probe !== undefined && now - this.#probe.sentAt <= this.#probeTimeout) return
    if (this.#nodeClient.status !== 'ready' || this.#subscriber.status !== 'ready') {
      this.#probe = undefined
      this.#probeFailure = 'Redis is unreachable'
      return
    }
    if (this.#probe !== undefined) {
      // Both connections are up yet our own channel is silent: a subscription was lost (failover, slot move).
      this.#probeFailure = `Pub/Sub loopback probe not back after ${now - this.#probe.sentAt} ms`
      this.#log.warn({ channels: this.#channels.size }, 'redis router: loopback probe lost; re-subscribing every channel')
      this.#subscribe([...this.#channels]).catch(() => {})
    }
    const n = ++this.#probeSeq
    this.#probe = { n, sentAt: now }
    this.#commands.forNode((client) => this.#publish(client, this.keys.nodeChannel(this.#nodeId), encodeProbe(this.#nodeId, n))).catch((err: unknown) => {
      if (this.#probe?.n === n) this.#probe = undefined
      this.#probeFailure = `probe publish failed: ${errorMessage(err)}`
    })
  }

  #probeReturned (sentAt: number): void {
    const now = Date.now()
    this.#probe = undefined
    this.#probeLatencyMs = now - sentAt
    this.#probeAt = now
    this.#probeFailure = undefined
    this.#wakeProbeWaiters()
  }

  #wakeProbeWaiters (): void {
    const waiters = this.#probeWaiters
    this.#probeWaiters = []
    for (const wake of waiters) wake()
  }

  /** Sends a probe now and resolves whether it came back within the probe timeout. */
  async #probeOnce (): Promise<boolean> {
    const before = this.#probeAt
    const back = new Promise<void>((resolve) => this.#probeWaiters.push(resolve))
    this.#sendProbe()
    let timer: NodeJS.Timeout | undefined
    await Promise.race([back, new Promise<void>((resolve) => { timer = setTimeout(resolve, this.#probeTimeout).unref() })])
    clearTimeout(timer)
    return this.#probeAt !== before
  }
}
