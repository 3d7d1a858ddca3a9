/**
 * The node's Pub/Sub side: the dedicated subscriber connection, the channels this node wants (re-
 * subscribed whenever the connection returns), decoding what arrives, and the loopback probe that
 * proves the whole path (publish → Redis → our subscription) works.
 */
import type { Cluster, Redis } from 'ioredis'
import { UnavailableError } from '../errors.js'
import type { Logger } from '../logger.js'
import { decodeChannelMessage, encodeProbe } from '../router/routed-event-codec.js'
import type { RoutedEvent } from '../router/router.js'
import { untilReady, type RedisClient } from './command-pool.js'
import type { RedisMode } from './connection.js'
import type { RedisKeys } from './keys.js'

/** Publishes with classic Pub/Sub, or sharded Pub/Sub in a Cluster (traffic then scales with shards). */
export function publish (mode: RedisMode, client: RedisClient, channel: string, message: string): Promise<unknown> {
  return mode === 'cluster' ? client.spublish(channel, message) : client.publish(channel, message)
}

const errorMessage = (err: unknown): string => err instanceof Error ? err.message : String(err)

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
  /** Subscriptions were lost and are back: what was published meanwhile did not arrive. */
  afterResubscribe: () => void
  /** Probe period in ms; a probe not back within max(period, 1 s) counts as lost. */
  probeInterval: number
  connectTimeout: number
  log: Logger
}

/** Interest-based subscriptions and the loopback probe of one node. */
export class RedisPubSub {
  readonly #options: RedisPubSubOptions
  readonly #subscriber: Redis | Cluster
  readonly #probeTimeout: number
  /** Channels this node wants; the subscriber's actual subscriptions follow it. */
  readonly #channels = new Set<string>()
  readonly #listeners: Array<[string, Listener]> = []
  #nodeId = ''
  #onEvent: ((event: RoutedEvent) => void) | undefined
  #lost = false
  #probeTimer: NodeJS.Timeout | undefined
  #probeSeq = 0
  #probe: { n: number, sentAt: number } | undefined
  #probeLatencyMs: number | null = null
  #probeAt: number | null = null
  #probeFailure: string | undefined
  #probeWaiters: Array<() => void> = []
  #received = 0

  constructor (options: RedisPubSubOptions) {
    this.#options = options
    this.#subscriber = options.subscriber
    this.#probeTimeout = Math.max(options.probeInterval, 1000)
  }

  /** Round trip of the last probe (ms) and when it came back; null when none did. */
  get probeLatencyMs (): number | null {
    return this.#probeLatencyMs
  }

  get probeAt (): number | null {
    return this.#probeAt
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
    this.#listen('close', () => { this.#lost = true })
    await untilReady(this.#subscriber, connectTimeout, () => new UnavailableError(`Redis (${mode}) not reachable within ${connectTimeout} ms: Pub/Sub connection ${this.#subscriber.status}`)).ready
    await this.subscribe([keys.nodeChannel(nodeId), keys.broadcastChannel])
    this.#lost = false
    this.#probeTimer = setInterval(() => this.#sendProbe(), this.#options.probeInterval).unref()
  }

  /** Whether this node wants `channel` (it has a local member of that room, say). */
  wants (channel: string): boolean {
    return this.#channels.has(channel)
  }

  async subscribe (channels: string[]): Promise<void> {
    for (const channel of channels) this.#channels.add(channel)
    if (this.#subscriber.status !== 'ready' || channels.length === 0) return
    try {
      if (this.#options.mode === 'cluster') {
        await Promise.all(channels.map((channel) => this.#subscriber.ssubscribe(channel)))
      } else {
        await this.#subscriber.subscribe(...channels)
      }
    } catch (err) {
      this.#lost = true
      this.#options.log.warn({ err, channels: channels.length }, 'redis router: subscribe failed; retried when the Pub/Sub connection returns')
    }
  }

  async unsubscribe (channels: string[]): Promise<void> {
    for (const channel of channels) this.#channels.delete(channel)
    if (this.#subscriber.status !== 'ready' || channels.length === 0) return
    if (this.#options.mode === 'cluster') {
      await Promise.all(channels.map((channel) => this.#subscriber.sunsubscribe(channel)))
    } else {
      await this.#subscriber.unsubscribe(...channels)
    }
  }

  /** A subscribe failed while the connection stayed up: no 'ready' will come to retry it, so the heartbeat does. */
  retryLost (): void {
    if (!this.#lost || this.#subscriber.status !== 'ready') return
    this.#lost = false
    this.#resubscribe()
  }

  /** What is wrong with the Pub/Sub path, if anything. */
  problems (): string[] {
    const problems: string[] = []
    if (this.#subscriber.status !== 'ready') problems.push(`Pub/Sub connection ${this.#subscriber.status}`)
    const probe = this.#probe
    if (probe !== undefined && Date.now() - probe.sentAt > this.#probeTimeout) {
      problems.push(`Pub/Sub loopback probe not back after ${Date.now() - probe.sentAt} ms`)
    } else if (this.#probeFailure !== undefined) {
      problems.push(this.#probeFailure)
    } else if (this.#probeAt === null) {
      problems.push('Pub/Sub loopback not verified yet')
    }
    return problems
  }

  /** Stops probing and listening, and unsubscribes every channel. */
  async close (): Promise<void> {
    clearInterval(this.#probeTimer)
    for (const [event, listener] of this.#listeners) this.#subscriber.off(event, listener)
    this.#listeners.length = 0
    this.#wakeProbeWaiters()
    this.#onEvent = undefined
    const channels = [...this.#channels]
    this.#channels.clear()
    await this.unsubscribe(channels)
  }

  /** Subscribes every wanted channel again; unless that failed too, what was missed is caught up. */
  async #resubscribe (): Promise<void> {
    await this.subscribe([...this.#channels])
    if (!this.#lost && this.#onEvent !== undefined) this.#options.afterResubscribe()
  }

  #listen (event: string, listener: Listener): void {
    this.#subscriber.on(event, listener)
    this.#listeners.push([event, listener])
  }

  #onReady (): void {
    if (this.#onEvent === undefined || !this.#lost) return
    this.#lost = false
    this.#options.log.info({ channels: this.#channels.size }, 'redis router: Pub/Sub is back; re-subscribing')
    this.#resubscribe().then(() => this.#sendProbe(), () => {})
  }

  #onMessage (message: string): void {
    const decoded = decodeChannelMessage(message)
    if (decoded === undefined) {
      this.#options.log.warn({ bytes: message.length }, 'redis router: ignored a channel message this version cannot read')
      return
    }
    if ('probe' in decoded) {
      if (decoded.origin === this.#nodeId && this.#probe?.n === decoded.probe) this.#probeReturned(this.#probe.sentAt)
      return
    }
    this.#received++
    this.#onEvent?.(decoded.event)
  }

  // ---- the loopback probe ----

  #sendProbe (): void {
    if (this.#onEvent === undefined) return
    const now = Date.now()
    if (this.#probe !== undefined && now - this.#probe.sentAt <= this.#probeTimeout) return
    if (!this.#options.publisherUp() || this.#subscriber.status !== 'ready') {
      this.#probe = undefined
      this.#probeFailure = 'Redis is unreachable'
      return
    }
    if (this.#probe !== undefined) {
      // Both connections are up yet our own channel is silent: a subscription was lost (failover, slot move).
      this.#probeFailure = `Pub/Sub loopback probe not back after ${now - this.#probe.sentAt} ms`
      this.#options.log.warn({ channels: this.#channels.size }, 'redis router: loopback probe lost; re-subscribing every channel')
      this.#resubscribe().catch(() => {})
    }
    const n = ++this.#probeSeq
    this.#probe = { n, sentAt: now }
    this.#options.publish(this.#options.keys.nodeChannel(this.#nodeId), encodeProbe(this.#nodeId, n)).catch((err: unknown) => {
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
  async probeOnce (): Promise<boolean> {
    const before = this.#probeAt
    const back = new Promise<void>((resolve) => this.#probeWaiters.push(resolve))
    this.#sendProbe()
    let timer: NodeJS.Timeout | undefined
    await Promise.race([back, new Promise<void>((resolve) => { timer = setTimeout(resolve, this.#probeTimeout).unref() })])
    clearTimeout(timer)
    return this.#probeAt !== before
  }
}
