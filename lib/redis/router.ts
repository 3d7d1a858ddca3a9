/**
 * Cross-node routing over Redis (standalone, Sentinel or Cluster): a thin façade over the node registry,
 * presence and Pub/Sub that sends each event only to the nodes that host its target, and repairs the
 * registry and presence when Redis returns after an outage.
 */
import type { Cluster, Redis } from 'ioredis'
import { asUnavailable, NodeIdInUseError, UnavailableError } from '../errors.js'
import type { Logger } from '../logger.js'
import { encodeRoutedEvent } from '../router/routed-event-codec.js'
import {
  parseConnectionId,
  type LocalNode, type NodeInfo, type PresenceEntry, type RoutedEvent, type Router, type RouterStatus, type StoreAndRoute
} from '../router/router.js'
import type { MessageStore } from '../store/message-store.js'
import { RedisCommandPool, type RedisClient } from './command-pool.js'
import type { RedisMode } from './connection.js'
import { RedisKeys } from './keys.js'
import { RedisNodeRegistry } from './node-registry.js'
import { RedisPresence } from './presence.js'
import { publish, RedisPubSub } from './pubsub.js'
import { RedisMessageStore } from './message-store.js'
import { runScript } from './scripts.js'
import { RedisUserSends } from './user-sends.js'

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

const unavailable = (err: unknown): Error => asUnavailable('Redis', err)

type Listener = (...args: any[]) => void

/**
 * Cross-node routing over Redis: the node registry, cluster-wide presence and interest-based Pub/Sub.
 * A send reaches only the nodes that host a target: a user's nodes (from presence) on their node
 * channels, a room's nodes on the room channel they subscribe to while they have a local member, every
 * node on the broadcast channel.
 *
 * While Redis is unreachable a send delivers to this node's own connections directly and then rejects
 * with `WSC_ERR_UNAVAILABLE`: the caller learns that other nodes were not reached.
 */
export class RedisRouter implements Router {
  readonly keys: RedisKeys
  readonly mode: RedisMode
  readonly #commands: RedisCommandPool
  readonly #log: Logger
  readonly #heartbeatInterval: number
  readonly #connectTimeout: number
  readonly #pubsub: RedisPubSub
  readonly #presence: RedisPresence
  readonly #registry: RedisNodeRegistry
  #node: LocalNode | undefined
  #nodeId = ''
  #onEvent: ((event: RoutedEvent) => void) | undefined
  #started = false
  #closed = false
  /** A command connection dropped or a presence write failed: republish presence once all are back. */
  #commandLost = false
  #heartbeatTimer: NodeJS.Timeout | undefined
  readonly #listeners: Array<[RedisClient, string, Listener]> = []

  constructor (options: RedisRouterOptions) {
    this.mode = options.mode
    this.keys = new RedisKeys(options.prefix)
    this.#commands = RedisCommandPool.of(options.commands)
    this.#log = options.log
    this.#heartbeatInterval = options.heartbeatInterval
    this.#connectTimeout = options.connectTimeout ?? 10_000
    this.#pubsub = new RedisPubSub({
      mode: this.mode,
      subscriber: options.subscriber,
      keys: this.keys,
      publish: (channel, message) => this.#commands.forNode((client) => publish(this.mode, client, channel, message)),
      publisherUp: () => this.#commands.nodeClient.status === 'ready',
      afterResubscribe: () => this.#afterGap(),
      probeInterval: options.probeInterval ?? Math.min(options.heartbeatInterval, 5000),
      connectTimeout: this.#connectTimeout,
      log: this.#log
    })
    this.#presence = new RedisPresence({
      commands: this.#commands,
      keys: this.keys,
      log: this.#log,
      onChange: () => this.#registry.refreshSoon(),
      onWriteFailed: () => { this.#commandLost = true },
      afterSync: () => this.#afterGap()
    })
    this.#registry = new RedisNodeRegistry({
      commands: this.#commands,
      keys: this.keys,
      presence: this.#presence,
      heartbeatInterval: options.heartbeatInterval,
      discoveryInterval: options.discoveryInterval,
      log: this.#log
    })
  }

  async start (node: LocalNode, onEvent: (event: RoutedEvent) => void): Promise<void> {
    this.#node = node
    this.#nodeId = node.nodeId
    this.#onEvent = onEvent
    for (const client of this.#commands.clients) {
      this.#listen(client, 'ready', () => this.#onCommandReady())
      this.#listen(client, 'close', () => { this.#commandLost = true })
    }
    this.#presence.start(node.nodeId)
    // min_idle_conns of the command connections; the others finish connecting in the background.
    const commandsReady = this.#commands.ready(this.#connectTimeout, `Redis (${this.mode})`)
    await Promise.all([commandsReady, this.#pubsub.start(node.nodeId, (event) => this.#deliverLocally(event))])
    try {
      await this.#registry.register(node)
    } catch (err) {
      throw err instanceof NodeIdInUseError ? err : unavailable(err)
    }
    this.#commandLost = false
    this.#started = true
    this.#heartbeatTimer = setInterval(() => this.#heartbeat(), this.#heartbeatInterval).unref()
    this.#registry.startTimers()
    if (!await this.#pubsub.probeOnce()) {
      this.#log.warn({ detail: this.status().detail }, 'redis router: the first Pub/Sub loopback probe did not come back')
    }
  }

  async refreshNode (): Promise<void> {
    if (this.#started) await this.#registry.write()
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const wasStarted = this.#started
    this.#started = false
    clearInterval(this.#heartbeatTimer)
    this.#registry.close()
    for (const [client, event, listener] of this.#listeners) client.off(event, listener)
    this.#listeners.length = 0
    this.#onEvent = undefined
    // A presence write still in flight on a user's connection could land after the purge on connection 0
    // scanned the user set, and leave an entry no reaper would ever find. No new one starts once closed.
    await this.#presence.close()
    if (!wasStarted) {
      // A start that failed (Redis refused, not reachable in time) may have left the Pub/Sub side running.
      await this.#pubsub.close()
      return
    }
    const results = await Promise.allSettled([this.#pubsub.close(), this.#deregister()])
    for (const result of results) {
      if (result.status === 'rejected') this.#log.warn({ err: result.reason }, 'redis router: could not deregister cleanly; peers will reap this node')
    }
  }

  async #deregister (): Promise<void> {
    const client = this.#commands.nodeClient
    if (client.status !== 'ready') throw new UnavailableError(`Redis is unreachable (connection ${client.status})`)
    await this.#registry.deregister()
  }

  status (): RouterStatus {
    const base = { probeLatencyMs: this.#pubsub.probeLatencyMs, probeAt: this.#pubsub.probeAt, received: this.#pubsub.received }
    if (!this.#started) return { ...base, up: false, detail: `redis ${this.mode}: ${this.#closed ? 'closed' : 'not started'}` }
    const problems = [...this.#commands.problems(), ...this.#pubsub.problems()]
    if (problems.length > 0) return { ...base, up: false, detail: `redis ${this.mode}: ${problems.join('; ')}` }
    const connecting = this.#commands.connecting
    const pool = connecting === 0 ? '' : `; ${connecting} of ${this.#commands.size} command connections still connecting`
    return { ...base, up: true, detail: `redis ${this.mode}: Pub/Sub loop verified in ${this.#pubsub.probeLatencyMs} ms; ${this.#registry.knownNodes} nodes${pool}` }
  }

  // ---- presence and the registry ----

  async addPresence (userId: string, connectionId: string): Promise<void> {
    await this.#presence.add(userId, connectionId)
  }

  async removePresence (userId: string, connectionId: string): Promise<void> {
    await this.#presence.remove(userId, connectionId)
  }

  async presence (userId: string): Promise<PresenceEntry[]> {
    return this.#call(() => this.#presence.entries(userId))
  }

  async onlineCount (): Promise<number> {
    return (await this.nodes()).reduce((sum, node) => sum + node.connections, 0)
  }

  async nodes (): Promise<NodeInfo[]> {
    return this.#call(() => this.#registry.nodes())
  }

  // ---- routing ----

  async toUser (userId: string, event: RoutedEvent): Promise<void> {
    if (this.#presence.hostsUser(userId)) this.#deliverLocally(event)
    const message = encodeRoutedEvent(this.#nodeId, event)
    // Presence read and publishes on the user's connection: concurrent sends to one user leave in send order.
    if (this.mode !== 'cluster') {
      // One round trip: the script reads the presence and publishes to every other hosting node.
      await this.#call(() => this.#commands.forUser(userId, (client) =>
        runScript(client, 'wscRouteToUser', [this.keys.presence(userId)], [this.#nodeId, this.keys.nodeChannel(''), message])))
      return
    }
    // Sharded Pub/Sub cannot publish to another slot's channel from a script: read, then publish.
    const remote = await this.#call(() => this.#presence.nodesOf(userId))
    remote.delete(this.#nodeId)
    if (remote.size === 0) return
    await this.#call(() => this.#commands.forUser(userId, (client) => Promise.all([...remote].map((nodeId) => publish(this.mode, client, this.keys.nodeChannel(nodeId), message)))))
  }

  /**
   * With the Redis message store on this router's own connections and prefix (standalone, Sentinel):
   * one script numbers, stores and routes the user messages of a turn ({@link RedisUserSends}). In a
   * Cluster a script cannot publish to another slot's channel: `store.append`, then {@link toUser}.
   */
  storeAndRoute (store: MessageStore): StoreAndRoute | undefined {
    if (this.mode === 'cluster' || !(store instanceof RedisMessageStore)) return undefined
    if (store.inbox.pool !== this.#commands || store.inbox.keys.prefix !== this.keys.prefix) return undefined
    const sends = new RedisUserSends({
      inbox: store.inbox,
      nodeId: () => this.#nodeId,
      hostsUser: (userId) => this.#presence.hostsUser(userId),
      deliverLocally: (event) => this.#deliverLocally(event)
    })
    return (userId, message, options) => sends.send(userId, message, options)
  }

  async toRoom (room: string, event: RoutedEvent): Promise<void> {
    // Local members get it back through the room channel this node subscribes to; directly only if that fails.
    const channel = this.keys.roomChannel(room)
    await this.#publishOrDeliverLocally((message) => this.#commands.forRoom(room, (client) => publish(this.mode, client, channel, message)), event, this.#pubsub.wants(channel))
  }

  async toConnection (connectionId: string, event: RoutedEvent): Promise<void> {
    const nodeId = parseConnectionId(connectionId)?.nodeId
    if (nodeId === undefined) return
    if (nodeId === this.#nodeId) {
      this.#deliverLocally(event)
      return
    }
    const message = encodeRoutedEvent(this.#nodeId, event)
    await this.#call(() => this.#commands.forNode((client) => publish(this.mode, client, this.keys.nodeChannel(nodeId), message)))
  }

  async toAll (event: RoutedEvent): Promise<void> {
    const channel = this.keys.broadcastChannel
    await this.#publishOrDeliverLocally((message) => this.#commands.forNode((client) => publish(this.mode, client, channel, message)), event, true)
  }

  async subscribeRoom (room: string): Promise<void> {
    await this.#pubsub.subscribe([this.keys.roomChannel(room)])
  }

  async unsubscribeRoom (room: string): Promise<void> {
    const channel = this.keys.roomChannel(room)
    if (!this.#pubsub.wants(channel)) return
    await this.#pubsub.unsubscribe([channel])
  }

  // ---- internals ----

  #afterGap (): void {
    if (!this.#started) return
    this.#log.info({ nodeId: this.#nodeId }, 'redis router: routing restored; catching local connections up from the store')
    this.#node?.afterGap()
  }

  #listen (client: RedisClient, event: string, listener: Listener): void {
    client.on(event, listener)
    this.#listeners.push([client, event, listener])
  }

  /** Runs a Redis call; any failure becomes `WSC_ERR_UNAVAILABLE`. */
  async #call<T> (fn: () => Promise<T>): Promise<T> {
    try {
      if (this.#onEvent === undefined) throw new UnavailableError(this.#closed ? 'the Redis router is closed' : 'the Redis router has not started')
      return await fn()
    } catch (err) {
      throw unavailable(err)
    }
  }

  async #publishOrDeliverLocally (send: (message: string) => Promise<unknown>, event: RoutedEvent, hostsTarget: boolean): Promise<void> {
    try {
      await this.#call(() => send(encodeRoutedEvent(this.#nodeId, event)))
    } catch (err) {
      if (hostsTarget) this.#deliverLocally(event)
      throw err
    }
  }

  #deliverLocally (event: RoutedEvent): void {
    try {
      this.#onEvent?.(event)
    } catch (err) {
      this.#log.error({ err, kind: event.kind }, 'redis router: local delivery failed')
    }
  }

  /** Recovers once every command connection is back: presence is republished on all of them. */
  #onCommandReady (): void {
    if (!this.#started || !this.#commandLost || !this.#commands.allReady) return
    this.#commandLost = false
    this.#log.info({ mode: this.mode }, 'redis router: Redis is back; re-registering and republishing presence')
    this.#registry.write()
      .then(() => this.#presence.sync())
      .catch((err: unknown) => {
        this.#commandLost = true
        this.#log.warn({ err }, 'redis router: recovery after reconnect failed; retried at the next heartbeat')
      })
  }

  #heartbeat (): void {
    this.#pubsub.retryLost()
    if (this.#commands.nodeClient.status !== 'ready') return
    // Presence is republished only when every connection can take its users' writes.
    const recovering = this.#commandLost && this.#commands.allReady
    if (recovering) this.#commandLost = false
    this.#registry.write()
      .then(() => recovering ? this.#presence.sync() : undefined)
      .catch((err: unknown) => {
        this.#commandLost ||= recovering
        this.#log.warn({ err }, 'redis router: heartbeat failed')
      })
  }
}
