import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import mysql from 'mysql2/promise'
import type { StoredMessage } from '../../lib/store/message-store.js'
import { MySqlMessageStore, type MySqlMessageStoreOptions } from '../../lib/store/mysql/mysql-message-store.js'
import { SCHEMA_VERSION, recordedVersions } from '../../lib/store/mysql/schema.js'
import type { TestContext } from 'node:test'
import { count, MySqlProxy, testDatabase, type TestDatabase } from '../backends.js'
import { waitFor } from '../helper.js'

const HOUR = 3600_000

function message (text: string, ts = Date.now()): { id: string, from: string | null, to: { user: string }, dataJson: string, ts: number } {
  return { id: randomUUID(), from: 'sender', to: { user: 'ignored' }, dataJson: JSON.stringify({ text }), ts }
}

/** A started store on the test database (or on `pool`), closed in `t.after` before the pool ends. */
async function startStore (t: TestContext, pool: mysql.Pool, options: MySqlMessageStoreOptions = {}): Promise<MySqlMessageStore> {
  const store = new MySqlMessageStore(pool, { probeInterval: 0, ...options })
  await store.start()
  t.after(() => store.close())
  return store
}

/** A pool that reaches the test database through `proxy`, ended in `t.after`. */
function poolVia (t: TestContext, db: TestDatabase, proxy: MySqlProxy, options: mysql.PoolOptions = {}): mysql.Pool {
  const pool = mysql.createPool({ uri: db.urlVia(proxy.port), connectionLimit: 4, connectTimeout: 2000, ...options })
  t.after(() => pool.end())
  return pool
}

test('migration runs again without error, concurrently too, and records the schema version', async (t) => {
  const db = await testDatabase(t)
  const first = new MySqlMessageStore(db.pool, { probeInterval: 0 })
  assert.deepEqual(await first.start(), { version: SCHEMA_VERSION, applied: Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1) })
  await first.close()
  const again = [new MySqlMessageStore(db.pool, { probeInterval: 0 }), new MySqlMessageStore(db.pool, { probeInterval: 0 })]
  const results = await Promise.all(again.map((store) => store.start()))
  assert.deepEqual(results, [{ version: SCHEMA_VERSION, applied: [] }, { version: SCHEMA_VERSION, applied: [] }])
  await Promise.all(again.map((store) => store.close()))
  assert.deepEqual(await recordedVersions(db.pool), Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1))
})

test('group commit: concurrent appends share a few multi-row INSERTs and every row is stored once', async (t) => {
  const db = await testDatabase(t)
  const proxy = await MySqlProxy.start(t)
  const store = await startStore(t, poolVia(t, db, proxy), { batchSize: 100 })
  const before = proxy.countStatements('INSERT INTO wsc_messages')
  const N = 400
  const users = ['ann', 'bob', 'cid', 'dee']
  const results = await Promise.all(Array.from({ length: N }, (_, i) => store.append(users[i % users.length] as string, message(`m${i}`))))
  const inserts = proxy.countStatements('INSERT INTO wsc_messages') - before
  assert.ok(inserts < N, `${inserts} INSERT round trips for ${N} appends`)
  assert.ok(inserts <= Math.ceil(N / 100) + 2, `${inserts} INSERT round trips for ${N} appends in batches of 100`)
  assert.equal(store.stats.messages, N)
  assert.equal(await count(db.pool, 'SELECT COUNT(*) AS n FROM wsc_messages'), N)
  for (const [u, user] of users.entries()) {
    // Each user's seqs are 1..100 in the order the appends were called.
    const seqs = results.filter((_, i) => i % users.length === u).map((stored) => stored.seq)
    assert.deepEqual(seqs, Array.from({ length: N / users.length }, (_, i) => i + 1), user)
    assert.equal((await store.head(user)).latestSeq, N / users.length)
  }
  const page = await store.since('bob', 10, 5)
  assert.deepEqual(page.map((m) => m.seq), [11, 12, 13, 14, 15])
  assert.deepEqual(page.map((m) => JSON.parse(m.dataJson)), [41, 45, 49, 53, 57].map((i) => ({ text: `m${i}` })))
  assert.deepEqual(page[0]?.to, { user: 'bob' })
  assert.equal(page[0]?.from, 'sender')
})

test('a retried insert of the same message id cannot store it twice for a user; another user may use the id', async (t) => {
  const db = await testDatabase(t)
  const store = await startStore(t, db.pool)
  const once = message('once')
  const [a, b] = await Promise.all([store.append('ann', once), store.append('ann', once)])
  const c = await store.append('ann', once)
  assert.equal(a.seq, 1)
  assert.deepEqual([b.seq, c.seq], [1, 1])
  assert.equal(await count(db.pool, 'SELECT COUNT(*) AS n FROM wsc_messages WHERE id = ?', [once.id]), 1)
  assert.equal((await store.append('ann', message('next'))).seq, 2, 'the refused duplicate consumed no seq')
  assert.equal((await store.append('bob', once)).seq, 1, 'message ids are unique per user: the same id is a new message for bob')
  assert.equal(await count(db.pool, 'SELECT COUNT(*) AS n FROM wsc_messages WHERE id = ?', [once.id]), 2)
})

test('user ids are exact: case, trailing spaces and non-ASCII make different users', async (t) => {
  const db = await testDatabase(t)
  const store = await startStore(t, db.pool)
  const users = ['bob', 'Bob', 'bob ', 'bøb', '🙂']
  for (const user of users) await store.append(user, message(user))
  for (const user of users) {
    const [only, ...rest] = await store.since(user, 0, 10)
    assert.equal(rest.length, 0, user)
    assert.deepEqual(JSON.parse(only?.dataJson ?? 'null'), { text: user })
    assert.equal(only?.seq, 1)
  }
})

test('ack never moves backwards nor past the latest seq', async (t) => {
  const db = await testDatabase(t)
  const store = await startStore(t, db.pool)
  await store.ack('nobody', 5)
  assert.equal(await store.ackedSeq('nobody'), 0)
  for (let i = 0; i < 3; i++) await store.append('ann', message(`m${i}`))
  await Promise.all([store.ack('ann', 2), store.ack('ann', 1)])
  assert.equal(await store.ackedSeq('ann'), 2)
  await store.ack('ann', 1)
  assert.equal(await store.ackedSeq('ann'), 2)
  await store.ack('ann', 99)
  assert.equal(await store.ackedSeq('ann'), 3)
})

test('the seq continues after the counter row was lost (MySQL max(seq) + 1)', async (t) => {
  const db = await testDatabase(t)
  const store = await startStore(t, db.pool)
  for (let i = 0; i < 5; i++) await store.append('ann', message(`m${i}`))
  await db.pool.query('DELETE FROM wsc_inboxes')
  assert.equal((await store.append('ann', message('after'))).seq, 6)
})

test('retention deletes by age and by count per user, in small batches, while appends go on', async (t) => {
  const db = await testDatabase(t)
  const proxy = await MySqlProxy.start(t)
  const store = await startStore(t, poolVia(t, db, proxy), { retentionAge: HOUR, retentionCount: 10, cleanupBatch: 7, batchSize: 50 })
  const old = Date.now() - 2 * HOUR
  for (let i = 0; i < 20; i++) await store.append('ann', message(`old${i}`, old))
  await Promise.all(Array.from({ length: 30 }, (_, i) => store.append('bob', message(`new${i}`))))
  await Promise.all(Array.from({ length: 4 }, (_, i) => store.append('cid', message(`new${i}`))))
  const deletesBefore = proxy.countStatements('DELETE FROM wsc_messages')
  const [deleted, ...sent] = await Promise.all([
    store.runRetention(),
    ...Array.from({ length: 8 }, (_, i) => store.append('dee', message(`during${i}`)))
  ]) as [number, ...StoredMessage[]]
  assert.equal(sent.length, 8)
  assert.equal(deleted, 20 + 20, 'the 20 old messages of ann and the 20 oldest of bob')
  assert.ok(proxy.countStatements('DELETE FROM wsc_messages') - deletesBefore >= Math.ceil(20 / 7) + Math.ceil(20 / 7))
  assert.equal(await count(db.pool, "SELECT COUNT(*) AS n FROM wsc_messages WHERE user_id = 'ann'"), 0)
  assert.deepEqual((await store.since('bob', 0, 100)).map((m) => m.seq), Array.from({ length: 10 }, (_, i) => 21 + i))
  assert.equal((await store.since('cid', 0, 100)).length, 4)
  assert.equal((await store.head('ann')).latestSeq, 20, 'deleting messages keeps the seq counter')
  assert.equal((await store.append('ann', message('next'))).seq, 21)
})

test('retention trims every user this store wrote to in one pass, and the users others wrote to by a sweep over passes', async (t) => {
  const db = await testDatabase(t)
  const other = await startStore(t, db.pool, { retentionCount: 1 })
  for (let u = 0; u < 150; u++) for (let i = 0; i < 2; i++) await other.append(`elsewhere-${u}`, message(`m${i}`))
  const store = await startStore(t, db.pool, { retentionCount: 1 })
  for (let u = 0; u < 150; u++) for (let i = 0; i < 2; i++) await store.append(`here-${u}`, message(`m${i}`))
  const over = async (prefix: string): Promise<number> => count(db.pool, 'SELECT COUNT(*) AS n FROM (SELECT user_id FROM wsc_messages WHERE user_id LIKE ? GROUP BY user_id HAVING COUNT(*) > 1) AS over_bound', [`${prefix}%`])
  await store.runRetention()
  assert.equal(await over('here-'), 0, 'every user this store wrote to is trimmed by the first pass')
  assert.ok(await over('elsewhere-') > 0, 'a pass sweeps a bounded number of the other users')
  for (let pass = 0; pass < 10 && await over('elsewhere-') > 0; pass++) await store.runRetention()
  assert.equal(await over('elsewhere-'), 0, 'the sweep reaches every user')
  assert.equal(await count(db.pool, 'SELECT COUNT(*) AS n FROM wsc_messages'), 300, 'each keeps its newest')
})

test('the retention job runs by itself every cleanupInterval', async (t) => {
  const db = await testDatabase(t)
  const store = await startStore(t, db.pool, { retentionAge: HOUR, cleanupInterval: 50 })
  for (let i = 0; i < 5; i++) await store.append('ann', message(`old${i}`, Date.now() - 2 * HOUR))
  await store.append('ann', message('new'))
  await waitFor(() => store.stats.deleted === 5, 5000, 'a timed retention pass')
  assert.deepEqual((await store.since('ann', 0, 10)).map((m) => JSON.parse(m.dataJson).text), ['new'])
  // Closed here, before the pool ends: close() stops the timer and waits for a pass under way.
  await store.close()
})

test('the health probe sees MySQL go and come back while no statement runs', async (t) => {
  const db = await testDatabase(t)
  const proxy = await MySqlProxy.start(t)
  const store = await startStore(t, poolVia(t, db, proxy), { probeInterval: 50 })
  await waitFor(() => store.status().latencyMs !== undefined, 5000, 'a first probe')
  assert.equal(store.status().up, true)
  await proxy.cut()
  await waitFor(() => !store.status().up, 5000, 'a probe that fails')
  assert.match(store.status().detail, /^mysql: /)
  await proxy.restore()
  await waitFor(() => store.status().up, 5000, 'a probe that succeeds again')
  // Closed here, before the proxy and the pool go: close() stops the timer and waits for a probe under way.
  await store.close()
})

test('MySQL unreachable: appends reject with WSC_ERR_UNAVAILABLE, status says so, and the pool recovers', async (t) => {
  const db = await testDatabase(t)
  const proxy = await MySqlProxy.start(t)
  const store = await startStore(t, poolVia(t, db, proxy))
  const before = await store.append('ann', message('before'))
  assert.equal(store.status().up, true)
  await proxy.cut()
  await assert.rejects(store.append('ann', message('during')), { code: 'WSC_ERR_UNAVAILABLE' })
  await assert.rejects(store.since('ann', 0, 10), { code: 'WSC_ERR_UNAVAILABLE' })
  assert.equal(store.status().up, false)
  assert.match(store.status().detail, /^mysql: /)
  assert.equal((await store.probe()).up, false)
  await proxy.restore()
  const after = await store.append('ann', message('after'))
  assert.ok(after.seq > before.seq)
  assert.equal(store.status().up, true)
  const probed = await store.probe()
  assert.equal(probed.up, true)
  assert.equal(typeof probed.latencyMs, 'number')
  assert.deepEqual((await store.since('ann', 0, 10)).map((m) => JSON.parse(m.dataJson).text), ['before', 'after'])
})

test('a message larger than the server accepts is refused with WSC_ERR_PAYLOAD, the others are stored', async (t) => {
  const db = await testDatabase(t)
  const store = await startStore(t, db.pool)
  const [[{ bytes }]] = await db.pool.query<Array<{ bytes: number }> & mysql.RowDataPacket[]>('SELECT @@max_allowed_packet AS bytes') as unknown as [[{ bytes: number }]]
  const huge = { ...message(''), dataJson: JSON.stringify('x'.repeat(Number(bytes))) }
  // 0.6 × the limit as JSON text, 1.2 × once every quote and backslash is escaped in the statement.
  const quotes = { ...message(''), dataJson: JSON.stringify('"'.repeat(Math.floor(Number(bytes) * 0.3))) }
  const results = await Promise.allSettled([store.append('ann', message('a')), store.append('ann', huge), store.append('ann', quotes), store.append('ann', message('b'))])
  for (const refused of [results[1], results[2]]) {
    assert.equal(refused?.status, 'rejected')
    assert.equal((refused as PromiseRejectedResult).reason.code, 'WSC_ERR_PAYLOAD')
  }
  assert.deepEqual((await store.since('ann', 0, 10)).map((m) => JSON.parse(m.dataJson).text), ['a', 'b'])
})

test('close writes what is queued, then refuses appends with WSC_ERR_CLOSED', async (t) => {
  const db = await testDatabase(t)
  const store = new MySqlMessageStore(db.pool, { probeInterval: 0 })
  await store.start()
  const queued = Array.from({ length: 50 }, (_, i) => store.append('ann', message(`m${i}`)))
  await store.close()
  assert.equal((await Promise.all(queued)).length, 50)
  assert.equal(await count(db.pool, 'SELECT COUNT(*) AS n FROM wsc_messages'), 50)
  await assert.rejects(store.append('ann', message('late')), { code: 'WSC_ERR_CLOSED' })
})
