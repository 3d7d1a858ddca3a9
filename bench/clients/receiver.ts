// What every load generator shares: counting received messages, latency samples, the IPC commands.
import { now, paced, percentile, serveCommands } from '../harness.js'
import { fulfilsWithin } from '../../lib/fulfils-within.js'

let received = 0
let target = Infinity
let firstAt = 0
let lastAt = 0
let latencies: number[] = []
/** When the message of each latency sample was sent (epoch ms), by the same index. */
let sentAts: number[] = []
let done: (() => void) | undefined
let finished: Promise<void> | undefined
/** Messages that arrived while no count was armed: a run that started before its count did. */
let unarmed = 0

/** Counts one received message while a count is armed (else only as unarmed); `sentAt` (from the payload's `t`) gives a latency sample. */
export function countMessage (sentAt: number | undefined): void {
  const at = now()
  if (finished === undefined) {
    unarmed++
    return
  }
  if (received === 0) firstAt = at
  received++
  lastAt = at
  if (sentAt !== undefined) {
    latencies.push(at - sentAt)
    sentAts.push(sentAt)
  }
  if (received >= target) done?.()
}

/** Opens one connection as `user`; `sampled` connections report latency; `room` is joined first. */
export type OpenOne = (base: string, user: string, sampled: boolean, room: string | undefined) => Promise<void>

/** A connection that sends users' messages: `publish` resolves once the server acknowledged it. */
export interface Publisher {
  publish (user: string, data: unknown): Promise<void>
}

/** Opens one publishing connection as `user`. */
export type OpenPublisher = (base: string, user: string) => Promise<Publisher>

/** Serves open/arm/wait/openPublishers/publish/closeAll over IPC for a load generator. */
export function serveLoad (openOne: OpenOne, openPublisher: OpenPublisher, closeAll: () => Promise<void>): void {
  const publishers: Publisher[] = []
  serveCommands({
    /** Opens `count` connections, `concurrency` at a time; returns how long it took. */
    open: async ({ base, count, concurrency, userPrefix, room, sampleEvery }) => {
      const started = now()
      const total = Number(count)
      const every = Number(sampleEvery ?? 50)
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < total) {
          const i = next++
          await openOne(String(base), `${String(userPrefix)}${i}`, i % every === 0, room === undefined ? undefined : String(room))
        }
      }
      await Promise.all(Array.from({ length: Number(concurrency ?? 50) }, worker))
      return { ms: now() - started }
    },
    /**
     * Starts a count of `total` messages. Every message that arrives after this command's reply counts:
     * start the sends only once it has answered. (A single "expect" command sent alongside the sends
     * raced them: this process could read the first messages before the command, and its reset of the
     * counter then discarded them — the "8999 of 9000" of a Socket.IO run.)
     */
    arm: ({ total }) => {
      if (finished !== undefined) throw new Error('a count is already armed')
      received = 0
      latencies = []
      sentAts = []
      target = Number(total)
      finished = new Promise<void>((resolve) => { done = resolve })
      return { unarmed }
    },
    /**
     * Resolves once the armed count is reached, or after `timeoutMs` with what did arrive; disarms. With
     * `slowest`, also the samples at or above the p99, each as [sent at (epoch ms), latency (ms)].
     */
    wait: async ({ timeoutMs, slowest }) => {
      if (finished === undefined) throw new Error('wait without arm')
      await fulfilsWithin(finished, Number(timeoutMs ?? 120_000))
      finished = undefined
      done = undefined
      const sorted = [...latencies].sort((a, b) => a - b)
      const p99 = percentile(sorted, 99)
      const result = { received, unarmed, ms: lastAt - firstAt, p50: percentile(sorted, 50), p99, samples: sorted.length }
      if (slowest !== true) return result
      return { ...result, slowest: latencies.flatMap((latency, i) => latency >= p99 ? [[sentAts[i], latency]] : []) }
    },
    /** Opens one publishing connection to each of `bases` (users `<userPrefix><index>`). */
    openPublishers: async ({ bases, userPrefix }) => {
      for (const [k, base] of (bases as string[]).entries()) publishers.push(await openPublisher(base, `${String(userPrefix)}${k}`))
      return publishers.length
    },
    /**
     * Publishes `count` messages of `size` bytes in total, split evenly over the publishers, at
     * `ratePerSecond` in total (0: as fast as acks come back), `inFlight` unacknowledged per publisher;
     * publisher k sends to random users of `targets[k]`. Rejects if any publish was refused.
     */
    publish: async ({ targets, count, ratePerSecond, inFlight, size }) => {
      const lists = targets as string[][]
      const each = Math.floor(Number(count) / publishers.length)
      const pad = 'x'.repeat(Number(size))
      const pace = { ratePerSecond: Number(ratePerSecond) / publishers.length, maxInFlight: Number(inFlight) }
      const times = await Promise.all(publishers.map(async (publisher, k) => {
        const users = lists[k] as string[]
        return paced(each, pace, async (i) => publisher.publish(users[Math.floor(Math.random() * users.length)] as string, { i, t: now(), pad }))
      }))
      return { ms: Math.max(...times), sent: each * publishers.length }
    },
    closeAll: async () => {
      await closeAll()
      return true
    }
  })
}
