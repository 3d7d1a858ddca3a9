// What every scenario of `npm run bench` shares: its shape, the bench processes it runs, and the count of
// messages a load generator received.
import { BenchProcess } from './harness.js'
import type { Row } from './results.js'

export interface Scenario {
  name: string
  run: (profile: { quick: boolean }) => Promise<Row[]>
}

export async function withProcesses<T> (files: Array<[string, Record<string, string>?]>, body: (processes: BenchProcess[]) => Promise<T>): Promise<T> {
  const processes: BenchProcess[] = []
  try {
    for (const [file, env] of files) processes.push(await BenchProcess.start(file, env))
    return await body(processes)
  } finally {
    await Promise.all(processes.map((p) => p.stop()))
  }
}

export interface CountResult { received: number, ms: number, p50: number, p99: number, samples: number }

/**
 * Counts `total` messages at the load generator around `send`: the count is armed (and acknowledged)
 * before the first send, and awaited after the last. Throws when fewer arrived, warm-ups included.
 */
export async function counted (clients: BenchProcess, total: number, what: string, send: () => Promise<unknown>): Promise<CountResult> {
  await clients.call('arm', { total })
  await send()
  const result = await clients.call<CountResult>('wait', {})
  if (result.received < total) throw new Error(`${what}: ${result.received} of ${total} messages arrived`)
  return result
}
