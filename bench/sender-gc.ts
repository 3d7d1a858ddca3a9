// `npm run build && npx tsx bench/sender-gc.ts [--in-flight=N]`: the sending side of cross-node user
// messages in one process, with its garbage collection. `app.wsc.sendToUser` of 1 KiB to 2,000 users that
// Redis presence puts on another node, 128 in flight (a Redis of its own, started here); for each of four
// runs of 30,000 messages after a warm-up: CPU per message, throughput, latency, and the scavenges and
// mark-compacts the process ran (from `perf_hooks` GC entries). Nothing else shares the process, so a
// change to how long a message's objects live shows here first (docs/performance.md, step 8). Node's
// `--trace-gc-nvp` on top (`npx tsx --trace-gc-nvp bench/sender-gc.ts`) prints the bytes each scavenge
// promoted.
import Fastify from 'fastify'
import wsc, { loadConfig } from 'fastify-wsc'
import { constants, PerformanceObserver } from 'node:perf_hooks'
import { now, paced, percentile } from './harness.js'
import { withBenchRedis } from './scenario.js'

const MESSAGES = 30_000
const ROUNDS = 4
const USERS = 2000
const IN_FLIGHT = Number(process.argv.find((arg) => arg.startsWith('--in-flight='))?.slice(12) ?? 128)
const users = Array.from({ length: USERS }, (_, i) => `u${i}`)
const pad = 'x'.repeat(1024)

let gc = { scavenges: 0, scavengeMs: 0, markCompacts: 0, markCompactMs: 0 }
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as { detail?: { kind?: number } }).detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      gc.scavenges++
      gc.scavengeMs += entry.duration
    } else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
      gc.markCompacts++
      gc.markCompactMs += entry.duration
    }
  }
}).observe({ entryTypes: ['gc'] })

await withBenchRedis(async (redis) => {
  const pipeline = redis.client.pipeline()
  for (const user of users) pipeline.hset(`wsc:presence:{${user}}`, `other~c-${user}`, 'other')
  await pipeline.exec()
  const config = loadConfig({ env: { REDIS_ADDR: redis.addr }, options: { server: { nodeId: 'sender' }, metrics: { port: 0, host: '127.0.0.1' } } })
  const app = Fastify({ logger: false })
  await app.register(wsc, { ...config, authenticate: () => null })
  await app.listen({ port: 0, host: '127.0.0.1' })
  try {
    const run = async (): Promise<number[]> => {
      const latencies: number[] = []
      await paced(MESSAGES, { maxInFlight: IN_FLIGHT }, async (i) => {
        const at = now()
        await app.wsc.sendToUser(users[i % USERS] as string, { i, t: Date.now(), pad })
        latencies.push(now() - at)
      })
      return latencies.sort((a, b) => a - b)
    }
    await run()
    console.log(`node ${process.version}, ${MESSAGES} messages of 1 KiB per run, ${IN_FLIGHT} in flight`)
    console.log('| run | CPU µs per message | messages/s | p50 / p99 ms | scavenges (mean ms) | mark-compacts (ms in all) |')
    console.log('|---|---|---|---|---|---|')
    for (let round = 1; round <= ROUNDS; round++) {
      gc = { scavenges: 0, scavengeMs: 0, markCompacts: 0, markCompactMs: 0 }
      const cpu = process.cpuUsage()
      const started = performance.now()
      const latencies = await run()
      const used = process.cpuUsage(cpu)
      const ms = performance.now() - started
      console.log(`| ${round} | ${((used.user + used.system) / MESSAGES).toFixed(1)} | ${Math.round(MESSAGES / ms * 1000)} | ${percentile(latencies, 50).toFixed(1)} / ${percentile(latencies, 99).toFixed(1)} | ${gc.scavenges} (${(gc.scavengeMs / Math.max(1, gc.scavenges)).toFixed(2)}) | ${gc.markCompacts} (${gc.markCompactMs.toFixed(0)}) |`)
    }
  } finally {
    await app.close()
  }
})
