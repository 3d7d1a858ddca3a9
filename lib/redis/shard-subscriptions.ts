/**
 * What ioredis 6's sharded subscriber group (`ClusterSubscriberGroup`, a Cluster client with
 * `shardedSubscribers: true`) holds, read so the Pub/Sub side can make it match the channels the node
 * wants: the list it re-subscribes after every reconnect — `addChannels` appends to it without
 * de-duplication, and a channel removed while its shard subscriber was down stays in it — and the
 * subscriptions each shard connection has confirmed. ioredis keeps both private: every read checks the
 * shape first, and {@link ShardSubscriptions.readable} is false when this ioredis does not have them.
 */
import type { Cluster } from 'ioredis'
import type { Logger } from '../logger.js'
import { fulfilsWithin } from '../fulfils-within.js'

/** How long a reconciliation waits for a shard connection's pending replies before skipping it. */
const SETTLE_TIMEOUT_MS = 5000

/** The slot Redis Cluster gives a key or shard channel: CRC16 (XMODEM) of its hash tag, or of the whole name. */
export function clusterSlot (name: string): number {
  let bytes = Buffer.from(name)
  const open = bytes.indexOf(0x7b)
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1)
    if (close > open + 1) bytes = bytes.subarray(open + 1, close)
  }
  let crc = 0
  for (const byte of bytes) {
    crc ^= byte << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc & 16383
}

/** One connection of ioredis's sharded subscriber group, as far as this module uses it. */
export interface ShardConnection {
  /** `host:port` of the master it subscribes on. */
  shard: string
  ready: boolean
  /** Shard channels the master confirmed on this connection. */
  channels: Set<string>
  /** Waits for the replies of every command sent on the connection before it (an in-flight SSUBSCRIBE, say). */
  settle (): Promise<unknown>
  /** SUNSUBSCRIBE on this very connection (the Cluster client would route by the current slot owner). */
  unsubscribe (channel: string): Promise<unknown>
}

interface SubscriberInstance {
  status: string
  condition?: { subscriber?: false | { channels: (kind: string) => string[] } } | null
  ping: () => Promise<unknown>
  sunsubscribe: (channel: string) => Promise<unknown>
}

/**
 * The channels a connection's server confirmed (`subscribe` or `ssubscribe`), as ioredis records them
 * from the replies; empty when it records none (or this ioredis keeps them elsewhere).
 */
export function confirmedChannels (connection: object, kind: 'subscribe' | 'ssubscribe'): string[] {
  const confirmed = (connection as SubscriberInstance).condition?.subscriber
  return confirmed === undefined || confirmed === false || typeof confirmed.channels !== 'function' ? [] : confirmed.channels(kind)
}

interface ShardedSubscriber {
  getInstance: () => SubscriberInstance | null
  getNodeKey: () => string
}

interface SubscriberGroup {
  channels: Map<number, string[]>
  shardedSubscribers: Map<string, ShardedSubscriber>
}

function groupOf (cluster: Cluster): SubscriberGroup | undefined {
  const group = (cluster as unknown as { shardedSubscribers?: Partial<SubscriberGroup> }).shardedSubscribers
  if (group === undefined || group === null || !(group.channels instanceof Map) || !(group.shardedSubscribers instanceof Map)) return undefined
  return group as SubscriberGroup
}

/** The sharded subscriber group of one Cluster client: its re-subscribe list and its shard connections. */
export class ShardSubscriptions {
  readonly #cluster: Cluster

  constructor (cluster: Cluster) {
    this.#cluster = cluster
  }

  /** Whether this ioredis exposes the group's state (ioredis 6 with `shardedSubscribers: true`). */
  get readable (): boolean {
    return groupOf(this.#cluster) !== undefined
  }

  /** Every channel in the re-subscribe list, with how many times it is listed. */
  listed (): Map<string, number> {
    const counts = new Map<string, number>()
    for (const channels of groupOf(this.#cluster)?.channels.values() ?? []) {
      for (const channel of channels) counts.set(channel, (counts.get(channel) ?? 0) + 1)
    }
    return counts
  }

  /** Keeps each wanted channel at most once in the re-subscribe list and drops every other one; returns how many entries went. */
  prune (wanted: ReadonlySet<string>): number {
    let removed = 0
    for (const [slot, channels] of groupOf(this.#cluster)?.channels ?? []) {
      const kept = [...new Set(channels)].filter((channel) => wanted.has(channel))
      removed += channels.length - kept.length
      if (kept.length !== channels.length) this.#setSlot(slot, kept)
    }
    return removed
  }

  /** Takes channels off the re-subscribe list, so a new SSUBSCRIBE lists each of them once. */
  unlist (channels: Iterable<string>): void {
    const group = groupOf(this.#cluster)
    if (group === undefined) return
    for (const channel of channels) {
      const slot = clusterSlot(channel)
      const listed = group.channels.get(slot)
      if (listed?.includes(channel) === true) this.#setSlot(slot, listed.filter((other) => other !== channel))
    }
  }

  #setSlot (slot: number, channels: string[]): void {
    const group = groupOf(this.#cluster)
    if (channels.length === 0) group?.channels.delete(slot)
    else group?.channels.set(slot, channels)
  }

  /** The group's shard connections, one per master it subscribes on. */
  connections (): ShardConnection[] {
    const connections: ShardConnection[] = []
    for (const subscriber of groupOf(this.#cluster)?.shardedSubscribers.values() ?? []) {
      const instance = subscriber.getInstance()
      if (instance === null) continue
      connections.push({
        shard: subscriber.getNodeKey(),
        ready: instance.status === 'ready',
        channels: new Set(confirmedChannels(instance, 'ssubscribe')),
        settle: () => instance.ping(),
        unsubscribe: (channel) => instance.sunsubscribe(channel)
      })
    }
    return connections
  }

  /**
   * Makes the shard connections' subscriptions equal `wanted`: waits for their pending replies (each
   * bounded), drops duplicates and unwanted channels from the re-subscribe list, unsubscribes what a
   * shard connection holds but is not wanted, and subscribes what no shard connection confirmed.
   * Resolves whether every step succeeded; rejects when a shard connection fails to answer its settle.
   */
  async reconcile (wanted: ReadonlySet<string>, log: Logger): Promise<boolean> {
    const settled = await Promise.all(this.connections().filter((connection) => connection.ready).map((connection) => fulfilsWithin(connection.settle(), SETTLE_TIMEOUT_MS)))
    let complete = settled.every(Boolean)
    this.prune(wanted)
    const confirmed = new Set<string>()
    for (const connection of this.connections().filter((connection) => connection.ready)) {
      const unwanted = [...connection.channels].filter((channel) => !wanted.has(channel))
      for (const channel of connection.channels) if (wanted.has(channel)) confirmed.add(channel)
      if (unwanted.length === 0) continue
      log.info({ shard: connection.shard, channels: unwanted.length }, 'redis router: unsubscribing channels this node no longer wants')
      const results = await Promise.allSettled(unwanted.map((channel) => connection.unsubscribe(channel)))
      if (results.some((result) => result.status === 'rejected')) complete = false
    }
    const missing = [...wanted].filter((channel) => !confirmed.has(channel))
    if (missing.length > 0) {
      this.unlist(missing)
      const results = await Promise.allSettled(missing.map((channel) => this.#cluster.ssubscribe(channel)))
      if (results.some((result) => result.status === 'rejected')) complete = false
    }
    return complete
  }

  /** The master serving `channel`'s slot, as the client's slot map says; undefined before it has one. */
  masterOf (channel: string): string | undefined {
    return this.#cluster.slots[clusterSlot(channel)]?.[0]
  }
}
