/**
 * The Pub/Sub loopback probe: a node publishes probes on channels it subscribes to and expects them
 * back, which proves the whole path (publish → Redis → its own subscription) works. In a Cluster each
 * shard that carries the node's subscriptions is probed, on one of the channels the node wants there.
 */
import { errorMessage } from '../errors.js'
import type { Logger } from '../logger.js'
import { fulfilsWithin } from '../fulfils-within.js'
import { encodeProbe } from '../router/routed-event-codec.js'

/** What a set of overdue probes says: how long the oldest has been out, and where. */
function notBack (probes: Array<{ sentAt: number } & ProbeTarget>, now: number): string {
  return `Pub/Sub loopback probe not back after ${now - Math.min(...probes.map((probe) => probe.sentAt))} ms on ${probes.map(where).join(', ')}`
}

/** A channel to probe and the shard (master `host:port`) it lives on; no shard with classic Pub/Sub. */
export interface ProbeTarget {
  channel: string
  shard?: string | undefined
}

export interface LoopbackProbeOptions {
  /** Publishes on a command connection: the probe leaves this way, as every routed event does. */
  publish: (channel: string, message: string) => Promise<unknown>
  /** The channels to probe now: one per shard that carries this node's subscriptions. */
  targets: () => ProbeTarget[]
  /** Whether the command and Pub/Sub connections are both up (a probe is sent only then). */
  connected: () => boolean
  /** Whether the node still subscribes to `channel` (a probe on a channel it left proves nothing). */
  wanted: (channel: string) => boolean
  /** Called when probes did not come back while both connections were up: a subscription was lost. */
  onLost: (lost: ProbeTarget[]) => void
  /** Probe period in ms; a probe not back within max(period, 1 s) counts as lost. */
  interval: number
  log: Logger
}

interface Outstanding extends ProbeTarget {
  sentAt: number
}

const where = (target: ProbeTarget): string => target.shard === undefined ? target.channel : `shard ${target.shard} (${target.channel})`

/** Probe rounds: one probe per target; a round passes when every probe of it came back. */
export class LoopbackProbe {
  readonly #options: LoopbackProbeOptions
  readonly #timeout: number
  readonly #outstanding = new Map<number, Outstanding>()
  #nodeId = ''
  #timer: NodeJS.Timeout | undefined
  #seq = 0
  #roundLatency = 0
  #roundFailures: string[] = []
  #latencyMs: number | null = null
  #at: number | null = null
  #failure: string | undefined
  #waiters: Array<() => void> = []

  constructor (options: LoopbackProbeOptions) {
    this.#options = options
    this.#timeout = Math.max(options.interval, 1000)
  }

  /** Round trip of the last passing round (its slowest probe, ms) and when it passed; null before one did. */
  get latencyMs (): number | null {
    return this.#latencyMs
  }

  get at (): number | null {
    return this.#at
  }

  /** Starts a round every period. */
  start (nodeId: string): void {
    this.#nodeId = nodeId
    this.#timer = setInterval(() => this.send(), this.#options.interval).unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#outstanding.clear()
    this.#wake()
  }

  /** Starts a round, unless one is under way and not overdue. */
  send (): void {
    if (this.#nodeId === '') return
    const now = Date.now()
    const overdue = [...this.#outstanding.values()].filter((probe) => now - probe.sentAt > this.#timeout)
    if (this.#outstanding.size > 0 && overdue.length === 0) return
    if (!this.#options.connected()) {
      // No round without both connections; what is down the connections' owners report themselves.
      this.#outstanding.clear()
      this.#failure = undefined
      this.#wake()
      return
    }
    const lost = overdue.filter((probe) => this.#options.wanted(probe.channel))
    if (lost.length > 0) {
      // Both connections are up, yet a channel of ours is silent: a subscription was lost (failover, slot move).
      this.#failure = notBack(lost, now)
      this.#options.log.warn({ shards: lost.map(where) }, 'redis router: loopback probe lost; reconciling the subscriptions')
      this.#options.onLost(lost)
    }
    this.#outstanding.clear()
    this.#roundLatency = 0
    this.#roundFailures = []
    const targets = this.#options.targets()
    for (const target of targets) {
      const n = ++this.#seq
      this.#outstanding.set(n, { ...target, sentAt: now })
      this.#options.publish(target.channel, encodeProbe(this.#nodeId, n)).catch((err: unknown) => {
        if (!this.#outstanding.delete(n)) return
        this.#roundFailures.push(`probe publish failed on ${where(target)}: ${errorMessage(err)}`)
        this.#roundEnded()
      })
    }
  }

  /** A probe arrived on a subscribed channel; probes of other nodes (on shared channels) are ignored. */
  received (origin: string, n: number): void {
    if (origin !== this.#nodeId) return
    const probe = this.#outstanding.get(n)
    if (probe === undefined) return
    this.#outstanding.delete(n)
    this.#roundLatency = Math.max(this.#roundLatency, Date.now() - probe.sentAt)
    this.#roundEnded()
  }

  #roundEnded (): void {
    if (this.#outstanding.size > 0) return
    if (this.#roundFailures.length === 0) {
      this.#latencyMs = this.#roundLatency
      this.#at = Date.now()
      this.#failure = undefined
    } else {
      this.#failure = this.#roundFailures.join('; ')
    }
    this.#wake()
  }

  /** What is wrong with the loop, if anything. */
  problems (): string[] {
    const now = Date.now()
    const overdue = [...this.#outstanding.values()].filter((probe) => now - probe.sentAt > this.#timeout && this.#options.wanted(probe.channel))
    if (overdue.length > 0) return [notBack(overdue, now)]
    if (this.#failure !== undefined) return [this.#failure]
    if (this.#at === null) return ['Pub/Sub loopback not verified yet']
    return []
  }

  #wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  /** Starts a round now and resolves whether it passed within the probe timeout. */
  async once (): Promise<boolean> {
    const before = this.#at
    const ended = new Promise<void>((resolve) => this.#waiters.push(resolve))
    this.send()
    await fulfilsWithin(ended, this.#timeout)
    return this.#at !== before
  }
}
