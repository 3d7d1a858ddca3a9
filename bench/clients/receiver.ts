// What every load generator shares: counting received messages, latency samples, the IPC commands.
import { now, percentile, serveCommands } from '../harness.js'

let received = 0
let target = Infinity
let firstAt = 0
let lastAt = 0
let latencies: number[] = []
let done: (() => void) | undefined

/** Counts one received message; `sentAt` (from the payload's `t`) gives a latency sample. */
export function countMessage (sentAt: number | undefined): void {
  const at = now()
  if (received === 0) firstAt = at
  received++
  lastAt = at
  if (sentAt !== undefined) latencies.push(at - sentAt)
  if (received >= target) done?.()
}

/** Opens one connection as `user`; `sampled` connections report latency; `room` is joined first. */
export type OpenOne = (base: string, user: string, sampled: boolean, room: string | undefined) => Promise<void>

/** Serves open/expect/closeAll over IPC for a load generator. */
export function serveLoad (openOne: OpenOne, closeAll: () => Promise<void>): void {
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
    /** Resolves once `total` messages arrived since the call (or after `timeoutMs`). */
    expect: async ({ total, timeoutMs }) => {
      received = 0
      latencies = []
      target = Number(total)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Number(timeoutMs ?? 120_000))
        done = () => { clearTimeout(timer); resolve() }
      })
      done = undefined
      const sorted = latencies.sort((a, b) => a - b)
      return { received, ms: lastAt - firstAt, p50: percentile(sorted, 50), p99: percentile(sorted, 99), samples: sorted.length }
    },
    closeAll: async () => {
      await closeAll()
      return true
    }
  })
}
