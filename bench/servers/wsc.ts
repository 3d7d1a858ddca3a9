// fastify-wsc under load: the example's shape (token = user id), limits opened up for benchmarking.
import Fastify from 'fastify'
import wsc, { loadConfig } from 'fastify-wsc'
import mysql from 'mysql2/promise'
import { memoryAfterGc, now, paced, percentile, sendToRandomUsers, serveCommands } from '../harness.js'

// Redis and MySQL come from the environment the bench runner sets (REDIS_ADDR, MYSQL_URL), as in the example.
const config = loadConfig({
  env: process.env,
  options: {
    server: { nodeId: process.env.BENCH_NODE_ID ?? 'bench-0' },
    websocket: { maxConnections: 50_000, messageBufferSize: 1_000_000, maxBufferedBytes: '1024MiB', rateLimit: 0, heartbeatInterval: '1h' },
    metrics: { port: 0, host: '127.0.0.1' }
  }
})
const app = Fastify({ logger: false })
await app.register(wsc, {
  ...config,
  authenticate: (request) => {
    const token = (request.query as { token?: string }).token
    return token === undefined ? null : { userId: token }
  },
  // Users publish to users in the cross-node scenario (the default refuses user targets).
  authorizePublish: () => true
})

serveCommands({
  listen: async () => {
    await app.listen({ port: 0, host: '127.0.0.1' })
    return (app.server.address() as { port: number }).port
  },
  fanout: async ({ room, count, size }) => {
    const pad = 'x'.repeat(Number(size))
    return { ms: await paced(Number(count), { yieldEvery: 10 }, async (i) => app.wsc.sendToRoom(String(room), { i, t: now(), pad })) }
  },
  sendToUsers: async (args) => sendToRandomUsers(args, async (user, data) => app.wsc.sendToUser(user, data)),
  memory: async () => ({ ...memoryAfterGc(), connections: await app.wsc.onlineCount() }),
  /** `count` sendToUser calls, `concurrency` at a time, over `users` users: each resolves once committed. */
  durableSends: async ({ count, concurrency, users }) => {
    return timedConcurrently(Number(count), Number(concurrency), async (i) => {
      await app.wsc.sendToUser(`durable-${i % Number(users)}`, { i, text: 'hello, durable world' })
    })
  },
  /** The baseline: one INSERT (autocommit) per message through a pool of the same size as the store's. */
  singleInserts: async ({ count, concurrency, users }) => {
    const pool = mysql.createPool({ uri: process.env.MYSQL_URL, connectionLimit: config.mysql.poolSize })
    try {
      await pool.query('CREATE TABLE IF NOT EXISTS bench_single (user_id VARBINARY(256) NOT NULL, seq BIGINT NOT NULL AUTO_INCREMENT, id CHAR(36) NOT NULL, data TEXT NOT NULL, PRIMARY KEY (seq), KEY (user_id)) ENGINE=InnoDB')
      return await timedConcurrently(Number(count), Number(concurrency), async (i) => {
        await pool.execute('INSERT INTO bench_single (user_id, id, data) VALUES (?, UUID(), ?)', [`durable-${i % Number(users)}`, JSON.stringify({ i, text: 'hello, durable world' })])
      })
    } finally {
      await pool.end()
    }
  }
})

/** Runs `count` operations, `concurrency` in flight; returns the time taken and the p99 of one operation. */
async function timedConcurrently (count: number, concurrency: number, operation: (i: number) => Promise<void>): Promise<{ ms: number, p99: number }> {
  const latencies: number[] = []
  let next = 0
  const started = now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++
      const at = now()
      await operation(i)
      latencies.push(now() - at)
    }
  }))
  return { ms: now() - started, p99: percentile(latencies.sort((a, b) => a - b), 99) }
}
