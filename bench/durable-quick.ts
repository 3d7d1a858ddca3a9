/**
 * Committed messages per second with MySQL: 5,000 concurrent `sendToUser` calls, each resolved only
 * after its COMMIT, against the embedded in-memory store measured in the same run; then the same
 * with the Redis window over MySQL (each send also in the user's Redis stream before it resolves).
 *
 *   npx tsx bench/durable-quick.ts
 *
 * MariaDB/MySQL from WSC_BENCH_MYSQL (default mysql://root@127.0.0.1:3306), a throwaway database
 * created and dropped; Redis from WSC_BENCH_REDIS (default redis://127.0.0.1:6379), keys under a
 * random prefix, deleted after. WSC_BENCH_SENDS and WSC_BENCH_ROUNDS change the size.
 */
import { randomBytes } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import mysql from 'mysql2/promise'
import type { MessageStore } from '../lib/store/message-store.js'
import type { MySqlMessageStore } from '../lib/store/mysql/mysql-message-store.js'
import { RedisMySqlMessageStore } from '../lib/store/redis-mysql-message-store.js'
import wsc from '../plugins/index.js'
import { deleteKeysWithPrefix } from '../test/redis-harness.js'

const server = process.env.WSC_BENCH_MYSQL ?? 'mysql://root@127.0.0.1:3306'
const redisUrl = process.env.WSC_BENCH_REDIS ?? 'redis://127.0.0.1:6379'
const SENDS = Number(process.env.WSC_BENCH_SENDS ?? 5000)
const ROUNDS = Number(process.env.WSC_BENCH_ROUNDS ?? 5)

async function app (options: { mysqlUrl?: string, messageStore?: MessageStore }): Promise<FastifyInstance> {
  const instance = Fastify({ logger: false })
  await instance.register(wsc, {
    server: { nodeId: 'bench' },
    authenticate: () => null,
    ...(options.mysqlUrl === undefined ? {} : { mysql: { url: options.mysqlUrl } }),
    ...(options.messageStore === undefined ? {} : { messageStore: options.messageStore })
  })
  await instance.ready()
  return instance
}

/** Messages per second for SENDS concurrent sends spread over `users` users (median of ROUNDS). */
async function measure (instance: FastifyInstance, users: number): Promise<number> {
  const rates: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now()
    const results = await Promise.all(Array.from({ length: SENDS }, (_, i) =>
      instance.wsc.sendToUser(`user-${round}-${i % users}`, { text: 'hello', i })))
    const seconds = (performance.now() - started) / 1000
    if (results.length !== SENDS) throw new Error('a send was lost')
    rates.push(SENDS / seconds)
  }
  return rates.sort((a, b) => a - b)[Math.floor(rates.length / 2)] as number
}

const admin = await mysql.createConnection(server)
const database = `wsc_bench_${randomBytes(4).toString('hex')}`
const redis = new Redis(redisUrl)
const prefix = `wscbench:${randomBytes(4).toString('hex')}:`
await admin.query(`CREATE DATABASE \`${database}\``)
try {
  const url = new URL(server)
  url.pathname = `/${database}`
  const pool = mysql.createPool({ uri: url.toString(), connectionLimit: 4 })
  const windowed = new RedisMySqlMessageStore(redis, pool, { prefix })
  await windowed.start()
  const memory = await app({})
  const durable = await app({ mysqlUrl: url.toString() })
  const both = await app({ messageStore: windowed })
  for (const instance of [memory, durable, both]) await measure(instance, 100)
  console.log(`${SENDS} concurrent sendToUser calls, median of ${ROUNDS} rounds`)
  for (const users of [100, 1]) {
    const base = await measure(memory, users)
    const store = durable.wscStore as MySqlMessageStore
    const before = { ...store.stats }
    const committed = await measure(durable, users)
    const batches = store.stats.batches - before.batches
    const messages = store.stats.messages - before.messages
    const windowedRate = await measure(both, users)
    console.log(`  ${String(users).padStart(3)} users  memory: ${Math.round(base)} msg/s  ` +
      `mysql: ${Math.round(committed)} committed msg/s (${(messages / batches).toFixed(0)} per INSERT, ratio ${(committed / base).toFixed(3)})  ` +
      `redis+mysql: ${Math.round(windowedRate)} committed msg/s (ratio ${(windowedRate / base).toFixed(3)})`)
  }
  await Promise.all([memory.close(), durable.close(), both.close()])
  await pool.end()
} finally {
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``)
  await admin.end()
  await deleteKeysWithPrefix(redis, prefix)
  redis.disconnect()
}
