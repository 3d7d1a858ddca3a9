/**
 * The node's Pub/Sub side: the dedicated subscriber connection, the channels this node wants (the one
 * record of its interest, which the connection's actual subscriptions are reconciled with after every
 * reconnect, failover or slot move), decoding what arrives, and the loopback probe.
 */
import type { Cluster, Redis } from 'ioredis'
import type { Logger } from '../logger.js'
import { fulfilsWithin } from '../fulfils-within.js'
import { decodeChannelMessage } from '../router/routed-event-codec.js'
import type { RoutedEvent } from '../router/router.js'
import { untilReady, type RedisClient } from './command-pool.js'
import { notReadyError } from './connection-errors.js'
import type { RedisMode } from './connection.js'
import type { RedisKeys } from './keys.js'
import { LoopbackProbe, type ProbeTarget } from './loopback-probe.js'
import { confirmedChannels, ShardSubscriptions } from './shard-subscriptions.js'

/** Publishes with classic Pub/Sub, or sharded Pub/Sub in a Cluster (traffic then scales with shards). */
export function publish (mode: RedisMode, client: RedisClient, channel: string, message: string): Promise<unknown> {
  return mode === 'cluster' ? client.spublish(channel, message) : client.publish(channel, message)
}

type Listener = (...args: any[]) => void

export interface RedisPubSubOptions {
  mode: RedisMode
  /** Dedicated Pub/Sub connection (a Cluster one with `shardedSubscribers: true`); never closed here. */
  subscriber: Redis | Cluster
  keys: RedisKeys
  /** Publishes on a command connection: the probe leaves this way, as every routed event does. */
  publish: (channel: string, message: string) => Promise<unknown>
  /** Whether that command connection is up (a probe is sent only when both are). */
  publisherUp: () => boolean
  /** Probe period in ms; a probe not back within max(period, 1 s) counts as lost. */
  probeInterval: number
  connectTimeout: number
  log: Logger
  /**
   * Subscriptions were lost and are back: called once they are confirmed again after a gap (the
   * connection or a shard subscriber was replaced, or a probe was lost). What was published meanwhile
   * did not arrive.
   */
  afterResubscribe: () => void
}

/** What the subscriptions look like, for tests and diagnostics. */
export interface SubscriptionCounts {
  /** Channels this node wants. */
  wanted: number
  /** Entries in ioredis's re-subscribe list (Cluster; duplicates counted); undefined with classic Pub/Sub. */
  listed: number | undefined
  /** Subscriptions the shard connections confirmed (Cluster); undefined with classic Pub/Sub. */
  confirmed: number | undefined
}

/** Interest-based subscriptions and the loopback probe of one node. */
export class RedisPubSub {
  readonly #options: RedisPubSubOptions
  readonly #subscriber: Redis | Cluster
  readonly #shards: ShardSubscriptions | undefined
  readonly #probe: LoopbackProbe
  /** Channels this node wants; the subscriber's actual subscriptions follow it. */
  readonly #channels = new Set<string>()
  /** Bumped whenever {@link #channels} changes, so a reconciliation that raced a change runs again. */
  #version = 0
  readonly #listeners: Array<[string, Listener]> = []
  #nodeId = ''
  #started = false
  #onEvent: ((event: RoutedEvent) => void) | undefined
  /** The subscriptions may differ from the wanted channels: reconcile when the connection allows. */
  #dirty = false
  /** Subscriptions were lost since the last complete reconciliation (see `afterResubscribe`). */
  #gap = false
  #reconciling: Promise<void> | undefined
  #again = false
  #unreadableLogged = false
  #received = 0

  constructor (options: RedisPubSubOptions) {
    this.#options = options
    this.#subscriber = options.subscriber
    this.#shards = options.mode === 'cluster' ? new ShardSubscriptions(options.subscriber as Cluster) : undefined
    this.#probe = new LoopbackProbe({
      publish: options.publish,
      targets: () => this.#probeTargets(),
      connected: () => options.publisherUp() && this.#subscriber.status === 'ready',
      wanted: (channel) => this.#channels.has(channel),
      onLost: () => this.#lostSubscriptions(),
      interval: options.probeInterval,
      log: options.log
    })
  }

  /** Round trip of the last probe round (ms) and when it came back; null when none did. */
  get probeLatencyMs (): number | null {
    return this.#probe.latencyMs
  }

  get probeAt (): number | null {
    return this.#probe.at
  }

  /** Events received from the bus, probes excluded (interest-based routing keeps this low). */
  get received (): number {
    return this.#received
  }

  /** Listens for this node's events and subscribes its own channel and the broadcast channel. */
  async start (nodeId: string, onEvent: (event: RoutedEvent) => void): Promise<void> {
    this.#nodeId = nodeId
    this.#onEvent = onEvent
    const { mode, keys, connectTimeout } = this.#options
    this.#listen(mode === 'cluster' ? 'smessage' : 'message', (_channel: string, message: string) => this.#onMessage(message))
    this.#listen('ready', () => this.#onReady())
    this.#listen('close', () => { this.#lostSubscriptions(false) })
    // ioredis replaced shard subscribers (one died, a master failed over, slots moved) and re-subscribed its list.
    if (mode === 'cluster') this.#listen('subscribersReady', () => { if (this.#started) this.#lostSubscriptions() })
    await untilReady(this.#subscriber, connectTimeout, (failure) => notReadyError(`Redis (${mode}) not reachable within ${connectTimeout} ms: Pub/Sub connection ${this.#subscriber.status}`, failure)).ready
    // The start failed elsewhere (the command connections) and the router closed this meanwhile.
    if (this.#onEvent === undefined) return
    // Batches come from the script that stores and routes user messages, which Cluster cannot run.
    const batches = this.#options.mode === 'cluster' ? [] : [keys.batchChannel(nodeId)]
    await this.subscribe([keys.nodeChannel(nodeId), ...batches, keys.broadcastChannel])
    if (this.#onEvent === undefined) return
    this.#started = true
    this.#probe.start(nodeId)
  }

  /** Whether this node wants `channel` (it has a local member of that room, say). */
  wants (channel: string): boolean {
    return this.#channels.has(channel)
  }

  /** Adds channels to the node's interest and subscribes them; a failure is retried, never thrown. */
  async subscribe (channels: string[]): Promise<void> {
    const added = channels.filter((channel) => !this.#channels.has(channel))
    if (added.length === 0) return
    for (const channel of added) this.#channels.add(channel)
    this.#version++
    if (this.#subscriber.status !== 'ready') {
      this.#dirty = true
      return
    }
    try {
      if (this.#options.mode === 'cluster') {
        await Promise.all(added.map((channel) => this.#subscriber.ssubscribe(channel)))
      } else {
        await this.#subscriber.subscribe(...added)
      }
    } catch (err) {
      // Whatever those channels carry until the retry succeeds is missed: a gap like a reconnect.
      this.#gap = true
      this.#dirty = true
      this.#options.log.warn({ err, channels: added.length }, 'redis router: subscribe failed; retried at the next heartbeat or when the Pub/Sub connection returns')
    }
  }

  /** Removes channels from the node's interest and unsubscribes them; a failure is retried, never thrown. */
  async unsubscribe (channels: string[]): Promise<void> {
    const removed = channels.filter((channel) => this.#channels.delete(channel))
    if (removed.length === 0) return
    this.#version++
    const cluster = this.#options.mode === 'cluster'
    if (this.#subscriber.status !== 'ready') {
      // A new classic connection starts with no subscription; ioredis's Cluster list keeps the channel
      // unless told now (the command waits in its offline queue and takes it off before re-subscribing).
      if (cluster) {
        this.#dirty = true
        for (const channel of removed) this.#subscriber.sunsubscribe(channel).catch(() => {})
      }
      return
    }
    try {
      if (cluster) {
        await Promise.all(removed.map((channel) => this.#subscriber.sunsubscribe(channel)))
      } else {
        await this.#subscriber.unsubscribe(...removed)
      }
    } catch (err) {
      this.#dirty = true
      this.#options.log.warn({ err, channels: removed.length }, 'redis router: unsubscribe failed; retried at the next heartbeat')
    }
  }

  /** A subscription change failed while the connection stayed up: no 'ready' will come to retry it, so the heartbeat does. */
  retryLost (): void {
    if (this.#dirty && this.#subscriber.status === 'ready') this.reconcile().catch(() => {})
  }

  /**
   * Makes the connection's subscriptions equal the wanted channels: with classic Pub/Sub, subscribes
   * them all again (a new connection has none); in a Cluster, waits for the shard connections'
   * pending replies, drops duplicates and unwanted channels from ioredis's re-subscribe list,
   * unsubscribes what a shard connection holds but the node does not want, and subscribes what no
   * shard connection confirmed. Runs one at a time; a call during a run makes it run once more.
   */
  reconcile (): Promise<void> {
    if (this.#reconciling !== undefined) {
      this.#again = true
      return this.#reconciling
    }
    this.#reconciling = (async () => {
      do {
        this.#again = false
        const version = this.#version
        const complete = await this.#reconcileOnce()
        if (this.#version !== version) this.#again = true
        else if (complete && this.#gap) {
          this.#gap = false
          this.#options.log.info({ channels: this.#channels.size }, 'redis router: Pub/Sub subscriptions confirmed after a gap')
          this.#options.afterResubscribe()
        }
      } while (this.#again && this.#onEvent !== undefined)
    })().finally(() => { this.#reconciling = undefined })
    return this.#reconciling
  }

  /** One reconciliation; resolves whether the subscriptions now equal the wanted channels. */
  async #reconcileOnce (): Promise<boolean> {
    if (this.#onEvent === undefined) return false
    if (this.#subscriber.status !== 'ready') {
      this.#dirty = true
      return false
    }
    this.#dirty = false
    const wanted = [...this.#channels]
    try {
      if (this.#shards === undefined) {
        // Nothing survives a reconnect (no autoResubscribe); a failed UNSUBSCRIBE may have left one behind.
        const unwanted = confirmedChannels(this.#subscriber, 'subscribe').filter((channel) => !this.#channels.has(channel))
        if (unwanted.length > 0) await this.#subscriber.unsubscribe(...unwanted)
        if (wanted.length > 0) await this.#subscriber.subscribe(...wanted)
        return true
      }
      if (!this.#shards.readable) return await this.#resubscribeBlindly(wanted)
      const complete = await this.#shards.reconcile(this.#channels, this.#options.log)
      if (!complete) this.#dirty = true
      return complete
    } catch (err) {
      this.#dirty = true
      this.#options.log.warn({ err, channels: wanted.length }, 'redis router: re-subscribing failed; retried at the next heartbeat')
      return false
    }
  }

  /** An ioredis without a readable subscriber group: subscribe everything again, as it would itself. */
  async #resubscribeBlindly (wanted: string[]): Promise<boolean> {
    if (!this.#unreadableLogged) {
      this.#unreadableLogged = true
      this.#options.log.warn({}, 'redis router: this ioredis does not expose its sharded subscriptions; re-subscribing every channel after each gap')
    }
    await Promise.all(wanted.map((channel) => this.#subscriber.ssubscribe(channel)))
    return true
  }

  /** What is wrong with the Pub/Sub path, if anything. */
  problems (): string[] {
    if (this.#subscriber.status !== 'ready') return [`Pub/Sub connection ${this.#subscriber.status}`, ...this.#probe.problems()]
    return this.#probe.problems()
  }

  /** The wanted channels against ioredis's list and the shard connections' confirmed subscriptions. */
  subscriptions (): SubscriptionCounts {
    const shards = this.#shards?.readable === true ? this.#shards : undefined
    return {
      wanted: this.#channels.size,
      listed: shards === undefined ? undefined : [...shards.listed().values()].reduce((sum, n) => sum + n, 0),
      confirmed: shards?.connections().reduce((sum, connection) => sum + connection.channels.size, 0)
    }
  }

  /** Sends a probe round now and resolves whether it came back within the probe timeout. */
  async probeOnce (): Promise<boolean> {
    return this.#probe.once()
  }

  /** Stops probing and listening, and unsubscribes every channel (bounded: the connection closes next anyway). */
  async close (): Promise<void> {
    this.#probe.stop()
    for (const [event, listener] of this.#listeners) this.#subscriber.off(event, listener)
    this.#listeners.length = 0
    this.#onEvent = undefined
    const channels = [...this.#channels]
    if (this.#subscriber.status !== 'ready') {
      this.#channels.clear()
      return
    }
    await fulfilsWithin(this.unsubscribe(channels), this.#options.connectTimeout)
  }

  #listen (event: string, listener: Listener): void {
    this.#subscriber.on(event, listener)
    this.#listeners.push([event, listener])
  }

  /** Subscriptions may be gone (connection closed, shard subscriber replaced, probe lost): reconcile now or when back. */
  #lostSubscriptions (reconcileNow = true): void {
    if (this.#onEvent === undefined) return
    this.#gap = true
    this.#dirty = true
    if (reconcileNow) this.reconcile().catch(() => {})
  }

  #onReady (): void {
    if (this.#onEvent === undefined || !this.#dirty) return
    this.#options.log.info({ channels: this.#channels.size }, 'redis router: Pub/Sub is back; re-subscribing')
    this.reconcile().then(() => this.#probe.send(), () => {})
  }

  #onMessage (message: string): void {
    const decoded = decodeChannelMessage(message)
    if (decoded === undefined) {
      this.#options.log.warn({ bytes: message.length }, 'redis router: ignored a channel message this version cannot read')
      return
    }
    if ('probe' in decoded) {
      this.#probe.received(decoded.origin, decoded.probe)
      return
    }
    if ('events' in decoded) {
      this.#received += decoded.events.length
      for (const event of decoded.events) this.#onEvent?.(event)
      return
    }
    this.#received++
    this.#onEvent?.(decoded.event)
  }

  /**
   * One channel per shard that carries this node's subscriptions: its own node channel where it lives,
   * else a room channel (other members' nodes ignore a probe that is not theirs), else broadcast.
   */
  #probeTargets (): ProbeTarget[] {
    const nodeChannel = this.#options.keys.nodeChannel(this.#nodeId)
    const shards = this.#shards
    if (shards === undefined) return [{ channel: nodeChannel }]
    const broadcast = this.#options.keys.broadcastChannel
    const rank = (channel: string): number => channel === nodeChannel ? 0 : channel === broadcast ? 2 : 1
    const byShard = new Map<string, string>()
    for (const channel of this.#channels) {
      const shard = shards.masterOf(channel)
      if (shard === undefined) continue
      const chosen = byShard.get(shard)
      if (chosen === undefined || rank(channel) < rank(chosen)) byShard.set(shard, channel)
    }
    if (byShard.size === 0) return [{ channel: nodeChannel }]
    return [...byShard].map(([shard, channel]) => ({ channel, shard }))
  }
}
