import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import { recordedVersions, SCHEMA_VERSION } from '../../lib/store/mysql/schema.js'
import mysqlStore from '../../plugins/mysql-store.js'
import { count, MySqlProxy, testDatabase } from '../backends.js'
import { build, directMessages, TestClient } from '../helper.js'
import { deletePrefix, SHARED_REDIS, uniquePrefix } from '../redis-harness.js'

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

test('a user offline for 500 sends receives all 500 in seq order on connect; once acked, a later connect replays nothing', async (t) => {
  const db = await testDatabase(t)
  const { app, url } = await build(t, { mysql: { url: db.url } })
  assert.equal(app.wscStore.durability, 'mysql')
  const sent = await Promise.all(range(1, 500).map((i) => app.wsc.sendToUser('ann', { n: i }, { from: 'bob' })))
  assert.deepEqual(sent.map((result) => result.seq), range(1, 500))
  assert.equal(await count(db.pool, 'SELECT COUNT(*) AS n FROM wsc_messages'), 500)

  const first = new TestClient(url('token=ann'))
  assert.equal((await first.next('welcome')).seq, 500)
  const replay = await first.take('message', 500)
  assert.deepEqual(replay.map((frame) => frame.seq), range(1, 500))
  assert.deepEqual(replay.map((frame) => (frame.data as { n: number }).n), range(1, 500))
  assert.deepEqual(replay.map((frame) => frame.id), sent.map((result) => result.id))
  assert.equal(replay[0]?.from, 'bob')
  first.send({ type: 'ack', seq: 500, id: 'acked' })
  assert.equal((await first.next('ack')).id, 'acked')
  await first.close()

  const later = new TestClient(url('token=ann'))
  assert.equal((await later.next('welcome')).seq, 500)
  // Nothing is replayed: the first message frame is the live one sent after connecting.
  assert.equal((await app.wsc.sendToUser('ann', { n: 501 })).seq, 501)
  const live = await later.next('message')
  assert.equal(live.seq, 501)
  await later.close()

  const resumed = new TestClient(url('token=ann&since=490'))
  assert.deepEqual((await resumed.take('message', 11)).map((frame) => frame.seq), range(491, 501))
  await resumed.close()
})

test('restarting the app re-runs migrations without error; the schema version is recorded', async (t) => {
  const db = await testDatabase(t)
  const first = await build(t, { mysql: { url: db.url } })
  for (let i = 1; i <= 3; i++) await first.app.wsc.sendToUser('ann', { n: i })
  await first.app.close()
  assert.deepEqual(await recordedVersions(db.pool), Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1))
  // Again, this time configured with mysql.host/user/database instead of a URL.
  const second = await build(t, { mysql: { host: '127.0.0.1', user: 'root', password: '', database: db.name } })
  assert.equal((await second.app.wsc.sendToUser('ann', { n: 4 })).seq, 4)
  assert.deepEqual(await recordedVersions(db.pool), Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1))
  const client = new TestClient(second.url('token=ann&since=2'))
  assert.deepEqual((await client.take('message', 2)).map((frame) => frame.seq), [3, 4])
  await client.close()
})

test('MySQL down: sends reject with WSC_ERR_UNAVAILABLE, readiness sees it, and sends succeed again when it returns', async (t) => {
  const db = await testDatabase(t)
  const proxy = await MySqlProxy.start(t)
  const { app, url } = await build(t, { mysql: { url: db.urlVia(proxy.port) }, authorizePublish: directMessages })
  const sender = await TestClient.connect(url('token=bob'))
  const receiver = await TestClient.connect(url('token=ann'))
  assert.equal((await app.wsc.sendToUser('ann', 'before')).seq, 1)
  assert.equal((await receiver.next('message')).data, 'before')

  await proxy.cut()
  await assert.rejects(app.wsc.sendToUser('ann', 'during'), { code: 'WSC_ERR_UNAVAILABLE' })
  sender.send({ type: 'publish', id: 'p1', to: { user: 'ann' }, data: 'from bob' })
  const refused = await sender.next('error')
  assert.equal(refused.id, 'p1')
  assert.equal(refused.code, 'UNAVAILABLE')
  assert.equal(app.wscStore.status?.().up, false)

  await proxy.restore()
  assert.equal((await app.wsc.sendToUser('ann', 'after')).seq, 2)
  assert.equal(app.wscStore.status?.().up, true)
  assert.equal((await receiver.next('message')).data, 'after')
  sender.send({ type: 'publish', id: 'p2', to: { user: 'ann' }, data: 'from bob again' })
  assert.equal((await sender.next('ack')).id, 'p2')
  assert.deepEqual(await receiver.next('message').then((frame) => [frame.seq, frame.data]), [3, 'from bob again'])
  await Promise.all([sender.close(), receiver.close()])
})

test('a payload that is not JSON-serializable or over the size limit is refused with WSC_ERR_PAYLOAD and nothing is stored', async (t) => {
  const db = await testDatabase(t)
  const { app } = await build(t, { mysql: { url: db.url }, websocket: { maxPayload: 1024 } })
  const circular: Record<string, unknown> = {}
  circular.self = circular
  for (const data of [circular, { n: 1n }, undefined, () => {}, 'x'.repeat(2000)]) {
    await assert.rejects(app.wsc.sendToUser('ann', data), { code: 'WSC_ERR_PAYLOAD' })
  }
  assert.equal(await count(db.pool, 'SELECT COUNT(*) AS n FROM wsc_messages'), 0)
  assert.equal((await app.wsc.sendToUser('ann', 'x'.repeat(1000))).seq, 1)
})

test('the mysql-store plugin never mutates the options it is given', async (t) => {
  const db = await testDatabase(t)
  const options = { url: db.url, batchSize: 10, poolOptions: Object.freeze({ connectionLimit: 2, connectTimeout: 3000 }) }
  const snapshot = structuredClone(options)
  // Frozen: @fastify/mysql deletes keys from its options and mysql2 copies the URI's parts into them.
  const app = Fastify({ logger: false })
  t.after(() => app.close())
  await app.register(mysqlStore, Object.freeze(options))
  await app.ready()
  assert.deepEqual(options, snapshot)
  assert.equal(app.wscStore.status?.().up, true)
  assert.equal((await app.wscStore.append('ann', { id: 'a1a1a1a1-0000-4000-8000-000000000000', from: null, to: { user: 'ann' }, dataJson: '1', ts: 1 })).seq, 1)
})

test('closing the app commits the sends already accepted before the pool ends', async (t) => {
  const db = await testDatabase(t)
  const { app } = await build(t, { mysql: { url: db.url } })
  const sends = range(1, 300).map((i) => app.wsc.sendToUser(`user-${i % 7}`, { n: i }))
  await app.close()
  assert.equal((await Promise.all(sends)).length, 300)
  assert.equal(await count(db.pool, 'SELECT COUNT(*) AS n FROM wsc_messages'), 300)
  await assert.rejects(app.wsc.sendToUser('ann', 'late'), { code: 'WSC_ERR_CLOSED' })
})

for (const store of ['mysql', 'redis', 'redis + mysql'] as const) {
  test(`${store}: a send retried with its id stores one message, and the retry resolves with its seq`, async (t) => {
    const prefix = uniquePrefix()
    t.after(() => deletePrefix(SHARED_REDIS, prefix))
    const db = store === 'redis' ? undefined : await testDatabase(t)
    const { app, url } = await build(t, {
      ...(db === undefined ? {} : { mysql: { url: db.url } }),
      ...(store === 'mysql' ? {} : { redis: { addr: SHARED_REDIS, prefix } })
    })
    const first = await app.wsc.sendToUser('ida', { order: 1 }, { id: 'order-1' })
    const retries = await Promise.all([1, 2, 3].map(async () => app.wsc.sendToUser('ida', { order: 1 }, { id: 'order-1' })))
    for (const retry of retries) assert.deepEqual(retry, first)
    const next = await app.wsc.sendToUser('ida', { order: 2 }, { id: 'order-2' })
    assert.equal(next.seq, (first.seq as number) + 1, 'a retry consumes no seq')
    assert.equal((await app.wsc.sendToUser('jon', { order: 1 }, { id: 'order-1' })).id, 'order-1', 'another user may use the id')
    if (db !== undefined) assert.equal(await count(db.pool, "SELECT COUNT(*) AS n FROM wsc_messages WHERE user_id = 'ida'"), 2)
    const ida = new TestClient(url('token=ida&since=0'))
    assert.deepEqual((await ida.take('message', 2)).map((m) => m.id), ['order-1', 'order-2'])
    await ida.close()
  })
}
