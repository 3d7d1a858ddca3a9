import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { Redis } from 'ioredis'
import mysql from 'mysql2/promise'
import type { StoredMessage } from '../../lib/store/message-store.js'
import { RedisMySqlMessageStore, type RedisMySqlMessageStoreOptions } from '../../lib/store/redis-mysql-message-store.js'
import { count, MySqlProxy, privateRedis, testDatabase, testRedis } from '../backends.js'
import { build, TestClient } from '../helper.js'

function message (text: string): { id: string, from: string | null, to: { user: string }, dataJson: string, ts: number } {
  return { id: randomUUID(), from: null, to: { user: 'ignored' }, dataJson: JSON.stringify({ text }), ts: Date.now() }
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** A started store, closed in `t.after`. */
async function startStore (t: TestContext, redis: Redis, pool: mysql.Pool, options: RedisMySqlMessageStoreOptions): Promise<RedisMySqlMessageStore> {
  const store = new RedisMySqlMessageStore(redis, pool, { probeInterval: 0, ...options })
  await store.start()
  t.after(() => store.close())
  return store
}

/** Every message after `afterSeq`, read page by page as a reconnecting client's replay does. */
async function replayAll (store: RedisMySqlMessageStore, userId: string, afterSeq: number, page: number): Promise<StoredMessage[]> {
  const out: StoredMessage[] = []
  let cursor = afterSeq
  for (;;) {
    const messages = await store.since(userId, cursor, page)
    out.push(...messages)
    if (messages.length < page) return out
    cursor = messages.at(-1)?.seq as number
  }
}

test('replay beyond the Redis window continues from MySQL with no gap or duplicate; inside it MySQL is not read', async (t) => {
  const db = await testDatabase(t)
  const proxy = await MySqlProxy.start(t)
  const pool = mysql.createPool({ uri: db.urlVia(proxy.port), connectionLimit: 4 })
  t.after(() => pool.end())
  const { client, prefix } = await testRedis(t)
  const store = await startStore(t, client, pool, { prefix, inboxSize: 20, batchSize: 40 })
  const sent = await Promise.all(range(1, 250).map((i) => store.append('ann', message(`m${i}`))))
  assert.deepEqual(sent.map((m) => m.seq), range(1, 250))

  const reads = (): number => proxy.countStatements('SELECT seq, id')
  const before = reads()
  assert.deepEqual((await store.since('ann', 230, 200)).map((m) => m.seq), range(231, 250))
  assert.deepEqual(await store.since('ann', 250, 200), [])
  assert.equal((await store.head('ann')).latestSeq, 250)
  assert.equal(reads() - before, 0, 'a replay inside the window reads Redis only')

  const all = await replayAll(store, 'ann', 0, 50)
  assert.deepEqual(all.map((m) => m.seq), range(1, 250))
  assert.deepEqual(all.map((m) => JSON.parse(m.dataJson).text), range(1, 250).map((i) => `m${i}`))
  assert.ok(reads() - before > 0, 'the older part came from MySQL')
  for (const after of [0, 1, 99, 200, 215, 229]) {
    assert.deepEqual((await store.since('ann', after, 30)).map((m) => m.seq), range(after + 1, Math.min(after + 30, 250)), `since ${after}`)
  }
})

test('Redis flushed mid-test: later sends get larger seqs, and resume still works', async (t) => {
  const db = await testDatabase(t)
  const { client } = await privateRedis(t)
  const store = await startStore(t, client, db.pool, { inboxSize: 10 })
  for (let i = 1; i <= 30; i++) await store.append('ann', message(`before${i}`))
  await store.ack('ann', 25)
  await client.flushall()
  const after = []
  for (let i = 1; i <= 30; i++) after.push(await store.append('ann', message(`after${i}`)))
  assert.deepEqual(after.map((m) => m.seq), range(31, 60))
  assert.equal((await store.head('ann')).latestSeq, 60)
  assert.equal(await store.ackedSeq('ann'), 25, 'the acked seq survives in MySQL')
  assert.deepEqual((await replayAll(store, 'ann', 10, 7)).map((m) => m.seq), range(11, 60))
  assert.deepEqual((await store.since('ann', 28, 4)).map((m) => JSON.parse(m.dataJson).text), ['before29', 'before30', 'after1', 'after2'])
})

test('two nodes sending to one user at once: seqs dense, replay without gap or duplicate', async (t) => {
  const db = await testDatabase(t)
  const { client, prefix } = await testRedis(t)
  const otherPool = mysql.createPool({ uri: db.url, connectionLimit: 4 })
  t.after(() => otherPool.end())
  const nodes = [
    await startStore(t, client, db.pool, { prefix, inboxSize: 50, batchSize: 25 }),
    await startStore(t, client, otherPool, { prefix, inboxSize: 50, batchSize: 25 })
  ]
  const sent = await Promise.all(range(0, 399).map((i) => (nodes[i % 2] as RedisMySqlMessageStore).append('ann', message(`m${i}`))))
  assert.deepEqual(sent.map((m) => m.seq).sort((a, b) => a - b), range(1, 400))
  for (const node of nodes) {
    assert.deepEqual((await replayAll(node, 'ann', 0, 64)).map((m) => m.seq), range(1, 400))
    assert.deepEqual((await replayAll(node, 'ann', 380, 64)).map((m) => m.seq), range(381, 400))
  }
})

test('a MySQL restored from an older backup continues above the Redis window: no seq is reused', async (t) => {
  const db = await testDatabase(t)
  const { client, prefix } = await testRedis(t)
  const store = await startStore(t, client, db.pool, { prefix })
  for (let i = 1; i <= 10; i++) await store.append('ann', message(`m${i}`))
  await db.pool.query('DELETE FROM wsc_messages WHERE seq > 4')
  await db.pool.query('UPDATE wsc_inboxes SET seq = 4')
  assert.equal((await store.append('ann', message('next'))).seq, 11)
})

test('Redis unreachable: appends reject before MySQL commits anything; replays and acks fall back to MySQL', async (t) => {
  const db = await testDatabase(t)
  const { client, stop } = await privateRedis(t)
  const store = await startStore(t, client, db.pool, {})
  for (let i = 1; i <= 3; i++) await store.append('ann', message(`m${i}`))
  await stop()
  await assert.rejects(store.append('ann', message('lost')), { code: 'WSC_ERR_UNAVAILABLE' })
  assert.equal(await count(db.pool, 'SELECT COUNT(*) AS n FROM wsc_messages'), 3)
  assert.deepEqual((await store.since('ann', 1, 10)).map((m) => m.seq), [2, 3])
  assert.equal((await store.head('ann')).latestSeq, 3)
  await store.ack('ann', 2)
  assert.equal(await store.ackedSeq('ann'), 2)
  assert.equal(store.status().up, false)
  assert.match(store.status().detail, /redis: /)
})

test('through the WebSocket: a client resumes with since= across a Redis flush', async (t) => {
  const db = await testDatabase(t)
  const { client } = await privateRedis(t)
  const store = new RedisMySqlMessageStore(client, db.pool, { inboxSize: 5, probeInterval: 0 })
  await store.start()
  const { app, url } = await build(t, { messageStore: store })
  for (let i = 1; i <= 10; i++) await app.wsc.sendToUser('ann', { n: i })
  await client.flushall()
  for (let i = 11; i <= 20; i++) assert.equal((await app.wsc.sendToUser('ann', { n: i })).seq, i)
  const ws = new TestClient(url('token=ann&since=3'))
  assert.equal((await ws.next('welcome')).seq, 20)
  const replay = await ws.take('message', 17)
  assert.deepEqual(replay.map((frame) => frame.seq), range(4, 20))
  assert.deepEqual(replay.map((frame) => (frame.data as { n: number }).n), range(4, 20))
  await ws.close()
})

test('the latest seq a welcome names is one the replay can give: a message committed but not yet in the window is not counted', async (t) => {
  const db = await testDatabase(t)
  const { client, prefix } = await testRedis(t)
  const store = await startStore(t, client, db.pool, { prefix, inboxSize: 100 })
  for (let i = 1; i <= 3; i++) await store.append('ann', message(`m${i}`))
  // MySQL commits seq 4 before the window has it: what happens between a batch's COMMIT and its copy into Redis.
  const { MySqlMessageStore } = await import('../../lib/store/mysql/mysql-message-store.js')
  const direct = new MySqlMessageStore(db.pool, { probeInterval: 0 })
  await direct.start()
  t.after(() => direct.close())
  assert.equal((await direct.append('ann', message('m4'))).seq, 4)
  const head = await store.head('ann')
  const visible = await replayAll(store, 'ann', 0, 100)
  assert.ok(head.latestSeq <= (visible.at(-1)?.seq ?? 0), `the welcome names ${head.latestSeq}; the replay gives up to ${visible.at(-1)?.seq}`)
  assert.equal(head.oldestSeq, 1)
})
