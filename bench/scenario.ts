// What every scenario of `npm run bench` shares: its shape, the bench processes it runs, and the count of
// messages a load generator received.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import mysql from 'mysql2/promise'
import { freePort, spawnRedis } from '../test/redis-harness.js'
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

export interface CountResult {
  received: number
  ms: number
  p50: number
  p99: number
  samples: number
  /** With `slowest`: the samples at or above the p99, each as [sent at (epoch ms), latency (ms)]. */
  slowest?: Array<[number, number]>
}

/**
 * Counts `total` messages at the load generator around `send`: the count is armed (and acknowledged)
 * before the first send, and awaited after the last. Throws when fewer arrived, warm-ups included.
 */
export async function counted (clients: BenchProcess, total: number, what: string, send: () => Promise<unknown>, options: { slowest?: boolean } = {}): Promise<CountResult> {
  await clients.call('arm', { total })
  await send()
  const result = await clients.call<CountResult>('wait', { slowest: options.slowest === true })
  if (result.received < total) throw new Error(`${what}: ${result.received} of ${total} messages arrived`)
  return result
}

/** A redis-server of the benchmark's own on a free port, removed after `body`. */
export async function withBenchRedis<T> (body: (redis: { addr: string, client: Redis }) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'wsc-bench-redis-'))
  const port = await freePort()
  const child = await spawnRedis(port, dir, [])
  const client = new Redis({ host: '127.0.0.1', port })
  try {
    return await body({ addr: `127.0.0.1:${port}`, client })
  } finally {
    client.disconnect()
    child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A throwaway database on the machine's MySQL (root, no password), dropped after `body`. */
export async function withBenchDatabase<T> (body: (database: { url: string }) => Promise<T>): Promise<T> {
  const admin = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root' })
  const database = `wsc_bench_${randomBytes(4).toString('hex')}`
  await admin.query(`CREATE DATABASE \`${database}\``)
  try {
    return await body({ url: `mysql://root@127.0.0.1:3306/${database}` })
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS \`${database}\``)
    await admin.end()
  }
}
