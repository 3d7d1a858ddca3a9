/**
 * Storage amplification: a client that publishes large messages to many user ids cannot grow the
 * embedded store, Redis or MySQL past the configured bounds, and no key is left for users with nothing
 * to keep.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { MemoryMessageStore } from '../../lib/store/memory-message-store.js'
import type { MySqlMessageStore } from '../../lib/store/mysql/mysql-message-store.js'
import { count, privateRedis, testDatabase } from '../backends.js'
import { build, buildInProcess, TestClient, waitFor } from '../helper.js'
import { deletePrefix, redisClient, SHARED_REDIS, uniquePrefix } from '../redis-harness.js'

const KIB = 1024
const MIB = 1024 * KIB
/** Direct messages on: the attack needs them (the library's default refuses them). */
const anyTarget = { authorizePublish: () => true }
const payload = (i: number): { i: number, pad: string } => ({ i, pad: 'x'.repeat(60 * KIB) })

/** Sends `messages` publish frames from one client to `users` distinct user ids and waits for every answer. */
async function flood (client: TestClient, users: number, messages: number, data = payload): Promise<void> {
  for (let i = 0; i < messages; i++) client.send({ type: 'publish', id: `p${i}`, to: { user: `victim-${i % users}` }, data: data(i) })
  await client.take('ack', messages, 60_000)
}

/** 12 KiB: two of them are more than the 16 KiB per user the 1,000-recipient floods below allow. */
const mid = (i: number): { i: number, pad: string } => ({ i, pad: 'y'.repeat(12 * KIB) })

test('embedded store: 1,000 messages of 60 KiB to 1,000 user ids stay within max_users and max_bytes', async (t) => {
  const { app, connect } = await buildInProcess(t, {
    ...anyTarget,
    websocket: { rateLimit: 0, maxPayload: '64KiB' },
    store: { maxUsers: 200, maxBytes: '8MiB', maxInboxBytes: '1MiB' },
    // The flood can hold the event loop for over a second on a loaded machine, and a node under
    // pressure refuses upgrades (503): load shedding is not what this test is about.
    health: { maxEventLoopDelay: 0 }
  })
  const attacker = await connect('token=attacker')
  await flood(attacker, 1000, 1000)
  const held = (app.wscStore as MemoryMessageStore).size
  assert.ok(held.users <= 200, `${held.users} users held`)
  assert.ok(held.bytes <= 8 * MIB, `${held.bytes} bytes held`)
  // The newest users' messages are there: a recipient that connects now gets its message.
  const recent = await connect('token=victim-999&since=0')
  assert.equal(((await recent.next('message')).data as { i: number }).i, 999)
  await Promise.all([attacker.close(), recent.close()])
})

test('embedded store: one user\'s inbox keeps max_inbox_bytes; a client resuming from before the oldest kept is told so', async (t) => {
  const { app, connect } = await buildInProcess(t, { store: { maxInboxBytes: '1MiB' } })
  for (let i = 0; i < 100; i++) await app.wsc.sendToUser('heavy', payload(i))
  const head = await app.wscStore.head('heavy')
  assert.equal(head.latestSeq, 100)
  const held = await app.wscStore.since('heavy', 0, 1000)
  assert.ok(held.reduce((sum, m) => sum + m.dataJson.length, 0) <= 1 * MIB)
  assert.equal(held.at(-1)?.seq, 100, 'the newest stays')
  const resumed = await connect('token=heavy&since=3')
  assert.equal(resumed.welcome?.recovered, false)
  assert.equal(resumed.welcome?.oldestSeq, held[0]?.seq)
  await resumed.close()
})

test('Redis: per-user keys expire after retention_age, the inbox keeps max_inbox_bytes, and a connection creates no key', async (t) => {
  const prefix = uniquePrefix()
  t.after(() => deletePrefix(SHARED_REDIS, prefix))
  const redis = redisClient(t)
  const { app, url } = await build(t, {
    ...anyTarget,
    redis: { addr: SHARED_REDIS, prefix },
    websocket: { rateLimit: 0 },
    store: { maxInboxBytes: '1MiB', retentionAge: '1h' }
  })
  const visitor = await TestClient.connect(url('token=visitor'))
  visitor.send({ type: 'ack', seq: 5 })
  visitor.send({ type: 'ping' })
  await visitor.next('pong')
  assert.deepEqual(await redis.keys(`${prefix}*{visitor}`), [`${prefix}presence:{visitor}`], 'a user with nothing to keep has no key but its presence while online')

  const attacker = await TestClient.connect(url('token=attacker'))
  await flood(attacker, 50, 200)
  for (const user of ['victim-0', 'victim-49']) {
    const entries = await redis.xrange(`${prefix}inbox:{${user}}`, '-', '+')
    const bytes = entries.reduce((sum, [, fields]) => sum + (fields[fields.indexOf('d') + 1]?.length ?? 0), 0)
    assert.ok(bytes <= 1 * MIB, `${user}: ${bytes} payload bytes in the stream`)
    assert.equal(Number(await redis.get(`${prefix}inbox-bytes:{${user}}`)), bytes, 'the byte count matches the stream')
    for (const key of ['seq', 'inbox', 'inbox-bytes']) {
      const ttl = await redis.pttl(`${prefix}${key}:{${user}}`)
      assert.ok(ttl > 0 && ttl <= 3600_000 * 1.01, `${key}:{${user}} expires within retention_age + 1 % (${ttl} ms)`)
    }
  }
  const ada = await TestClient.connect(url('token=victim-49&since=0'))
  assert.equal((await ada.take('message', 4)).length, 4)
  await Promise.all([visitor.close(), attacker.close(), ada.close()])
  await waitFor(async () => (await app.wsc.isOnline('visitor')) ? undefined : true, 5000, 'the visitor to go offline')
  assert.deepEqual(await redis.keys(`${prefix}*{visitor}`), [], 'nothing is left of a user who never had a message')
})

test('MySQL: the cleanup job trims each user to max_inbox_bytes, keeping the newest', async (t) => {
  const db = await testDatabase(t)
  const { app } = await build(t, { mysql: { url: db.url }, store: { maxInboxBytes: '1MiB', cleanupInterval: '1h' } })
  for (let i = 0; i < 60; i++) await app.wsc.sendToUser('heavy', payload(i))
  await app.wsc.sendToUser('light', { small: true })
  await (app.wscStore as MySqlMessageStore).runRetention()
  const bytes = await count(db.pool, "SELECT SUM(LENGTH(data)) AS n FROM wsc_messages WHERE user_id = 'heavy'")
  assert.ok(bytes <= 1 * MIB && bytes > 0, `${bytes} payload bytes kept`)
  assert.equal(await count(db.pool, "SELECT MAX(seq) AS n FROM wsc_messages WHERE user_id = 'heavy'"), 60, 'the newest stays')
  assert.equal(await count(db.pool, "SELECT COUNT(*) AS n FROM wsc_messages WHERE user_id = 'light'"), 1)
})

test('Redis: 3,000 messages of 12 KiB to 1,000 user ids grow used_memory by at most max_inbox_bytes per user', async (t) => {
  // A redis-server of the test's own, so that used_memory is this app's alone.
  const redis = await privateRedis(t)
  const { app, url } = await build(t, {
    ...anyTarget,
    redis: { addr: `127.0.0.1:${redis.port}` },
    websocket: { rateLimit: 0 },
    store: { maxInboxBytes: '16KiB' }
  })
  const usedMemory = async (): Promise<number> => Number(/used_memory:(\d+)/.exec(await redis.client.info('memory'))?.[1])
  const attacker = await TestClient.connect(url('token=attacker'))
  const before = await usedMemory()
  await flood(attacker, 1000, 3000, mid)
  const grown = await usedMemory() - before
  // Without the byte bound each user would keep its three messages: 36 MiB.
  assert.ok(grown < 1000 * 16 * KIB, `used_memory grew by ${(grown / MIB).toFixed(1)} MiB for 1,000 recipients`)
  for (const user of ['victim-0', 'victim-999']) {
    const kept = await app.wscStore.since(user, 0, 10)
    assert.deepEqual(kept.map((m) => (JSON.parse(m.dataJson) as { i: number }).i), [user === 'victim-0' ? 2000 : 2999], `${user} keeps its newest message only`)
  }
  await attacker.close()
})

test('MySQL: 2,000 messages of 12 KiB to 1,000 user ids keep at most max_inbox_bytes per user after one cleanup pass', async (t) => {
  const db = await testDatabase(t)
  const { app, url } = await build(t, { ...anyTarget, mysql: { url: db.url }, websocket: { rateLimit: 0 }, store: { maxInboxBytes: '16KiB', cleanupInterval: '1h' } })
  const attacker = await TestClient.connect(url('token=attacker'))
  await flood(attacker, 1000, 2000, mid)
  assert.equal(await count(db.pool, 'SELECT COUNT(*) AS n FROM wsc_messages'), 2000, 'every message was stored')
  // One pass trims every user this node wrote to, however many: an attacker cannot outrun the job.
  await (app.wscStore as MySqlMessageStore).runRetention()
  assert.equal(await count(db.pool, 'SELECT COUNT(DISTINCT user_id) AS n FROM wsc_messages'), 1000, 'every recipient keeps its newest')
  assert.ok(await count(db.pool, 'SELECT MAX(b) AS n FROM (SELECT SUM(LENGTH(data)) AS b FROM wsc_messages GROUP BY user_id) AS per_user') <= 16 * KIB)
  assert.ok(await count(db.pool, 'SELECT SUM(LENGTH(data)) AS n FROM wsc_messages') <= 1000 * 16 * KIB)
  await attacker.close()
})
