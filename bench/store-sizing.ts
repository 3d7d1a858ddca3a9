// What a user and a message cost in each store: `node --expose-gc --import tsx bench/store-sizing.ts` (docs/delivery.md "Sizing").
// Embedded: heap after GC; Redis: used_memory of a private redis-server; MySQL: InnoDB data + index length.
import { randomUUID } from 'node:crypto'
import { rmSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import mysql, { type RowDataPacket } from 'mysql2/promise'
import { MemoryMessageStore } from '../lib/store/memory-message-store.js'
import type { MessageStore } from '../lib/store/message-store.js'
import { MySqlMessageStore } from '../lib/store/mysql/mysql-message-store.js'
import { RedisMessageStore } from '../lib/redis/message-store.js'
import { freePort, spawnRedis } from '../test/redis-harness.js'

const USERS = Number(process.env.SIZING_USERS ?? 2000)
const PER_USER = Number(process.env.SIZING_MESSAGES ?? 50)
const PAYLOAD = Number(process.env.SIZING_PAYLOAD ?? 100)
const data = JSON.stringify({ text: 'x'.repeat(PAYLOAD - 13) })

async function fill (store: MessageStore, users: number, perUser: number): Promise<void> {
  for (let u = 0; u < users; u++) {
    await Promise.all(Array.from({ length: perUser }, async () => store.append(`user-${u}`, { id: randomUUID(), from: 'someone', to: { user: `user-${u}` }, dataJson: data, ts: Date.now() })))
  }
}

/** Bytes per user with one message, and per further message, from two fills measured by `measure`. */
async function perUserAndMessage (name: string, make: () => Promise<{ store: MessageStore, measure: () => Promise<number>, done: () => Promise<void> }>): Promise<void> {
  const results: number[] = []
  for (const perUser of [1, PER_USER]) {
    const { store, measure, done } = await make()
    const before = await measure()
    await fill(store, USERS, perUser)
    results.push((await measure() - before) / USERS)
    await store.close()
    await done()
  }
  const [one = 0, many = 0] = results
  const perMessage = (many - one) / (PER_USER - 1)
  console.log(`| ${name} | ${Math.round(one - perMessage)} B | ${Math.round(perMessage)} B (${PAYLOAD} B payload) |`)
}

function heap (): number {
  globalThis.gc?.()
  return process.memoryUsage().heapUsed
}

console.log(`| store | per user (no message) | per message of ${PAYLOAD} B |`)
console.log('|---|---|---|')

await perUserAndMessage('embedded (heap)', async () => ({ store: new MemoryMessageStore(1000), measure: async () => heap(), done: async () => {} }))

await perUserAndMessage('Redis (used_memory)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wsc-sizing-'))
  const port = await freePort()
  const server = await spawnRedis(port, dir, [])
  const client = new Redis({ port })
  const measure = async (): Promise<number> => Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1])
  return {
    store: new RedisMessageStore(client, { retentionAge: 7 * 86_400_000 }),
    measure,
    done: async () => {
      client.disconnect()
      server.kill()
      rmSync(dir, { recursive: true, force: true })
    }
  }
})

await perUserAndMessage('MySQL (data + index length)', async () => {
  const admin = await mysql.createConnection({ uri: process.env.WSC_BENCH_MYSQL ?? 'mysql://root@127.0.0.1:3306' })
  const name = `wsc_sizing_${randomUUID().slice(0, 8)}`
  await admin.query(`CREATE DATABASE ${name}`)
  const pool = mysql.createPool({ uri: `${process.env.WSC_BENCH_MYSQL ?? 'mysql://root@127.0.0.1:3306'}/${name}`, connectionLimit: 4 })
  const store = new MySqlMessageStore(pool, { probeInterval: 0 })
  await store.start()
  const measure = async (): Promise<number> => {
    await pool.query('ANALYZE TABLE wsc_messages, wsc_inboxes')
    const [rows] = await pool.query<RowDataPacket[]>('SELECT SUM(data_length + index_length) AS bytes FROM information_schema.TABLES WHERE table_schema = DATABASE()')
    return Number(rows[0]?.bytes ?? 0)
  }
  return {
    store,
    measure,
    done: async () => {
      await pool.end()
      await admin.query(`DROP DATABASE ${name}`)
      await admin.end()
    }
  }
})
