// What a user and a message cost in each store: `node --expose-gc --import tsx bench/store-sizing.ts` (docs/delivery.md "Sizing").
// Embedded: heap after GC; Redis: used_memory of a private redis-server; MySQL: InnoDB data + index length.
import { randomUUID } from 'node:crypto'
import mysql, { type RowDataPacket } from 'mysql2/promise'
import { MemoryMessageStore } from '../lib/store/memory-message-store.js'
import type { MessageStore } from '../lib/store/message-store.js'
import { MySqlMessageStore } from '../lib/store/mysql/mysql-message-store.js'
import { RedisMessageStore } from '../lib/redis/message-store.js'
import { memoryAfterGc } from './harness.js'
import { withBenchDatabase, withBenchRedis } from './scenario.js'

const USERS = Number(process.env.SIZING_USERS ?? 2000)
const PER_USER = Number(process.env.SIZING_MESSAGES ?? 50)
const PAYLOAD = Number(process.env.SIZING_PAYLOAD ?? 100)
const data = JSON.stringify({ text: 'x'.repeat(PAYLOAD - 13) })

async function fill (store: MessageStore, users: number, perUser: number): Promise<void> {
  for (let u = 0; u < users; u++) {
    await Promise.all(Array.from({ length: perUser }, async () => store.append(`user-${u}`, { id: randomUUID(), from: 'someone', to: { user: `user-${u}` }, dataJson: data, ts: Date.now() })))
  }
}

/** A store to fill, and what measures its size; handed to `use` for the time the store exists. */
type WithStore = (use: (store: MessageStore, measure: () => Promise<number>) => Promise<number>) => Promise<number>

/** Bytes per user with one message, and per further message, from two fills, each in a fresh store. */
async function perUserAndMessage (name: string, withStore: WithStore): Promise<void> {
  const results: number[] = []
  for (const perUser of [1, PER_USER]) {
    results.push(await withStore(async (store, measure) => {
      const before = await measure()
      await fill(store, USERS, perUser)
      const grown = (await measure() - before) / USERS
      await store.close()
      return grown
    }))
  }
  const [one = 0, many = 0] = results
  const perMessage = (many - one) / (PER_USER - 1)
  console.log(`| ${name} | ${Math.round(one - perMessage)} B | ${Math.round(perMessage)} B (${PAYLOAD} B payload) |`)
}

console.log(`| store | per user (no message) | per message of ${PAYLOAD} B |`)
console.log('|---|---|---|')

await perUserAndMessage('embedded (heap)', async (use) => use(new MemoryMessageStore(1000), async () => memoryAfterGc().heapUsed))

await perUserAndMessage('Redis (used_memory)', async (use) => withBenchRedis(async ({ client }) =>
  use(new RedisMessageStore(client, { retentionAge: 7 * 86_400_000 }), async () => Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1]))))

await perUserAndMessage('MySQL (data + index length)', async (use) => withBenchDatabase(async ({ url }) => {
  const pool = mysql.createPool({ uri: url, connectionLimit: 4 })
  try {
    const store = new MySqlMessageStore(pool, { probeInterval: 0 })
    await store.start()
    return await use(store, async () => {
      await pool.query('ANALYZE TABLE wsc_messages, wsc_inboxes')
      const [rows] = await pool.query<RowDataPacket[]>('SELECT SUM(data_length + index_length) AS bytes FROM information_schema.TABLES WHERE table_schema = DATABASE()')
      return Number(rows[0]?.bytes ?? 0)
    })
  } finally {
    await pool.end()
  }
}))
