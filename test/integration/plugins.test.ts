import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance } from 'fastify'
import { health, metrics, mysqlStore, nodeIdentity, redisRouter, websocket } from '../../plugins/index.js'
import { count, testDatabase } from '../backends.js'
import { TestClient } from '../helper.js'
import { deletePrefix, SHARED_REDIS, uniquePrefix } from '../redis-harness.js'
import { startServer, type ServerProcess } from '../server-process.js'

const authenticate = (request: { url: string }): { userId: string } | null => {
  const token = new URL(request.url, 'http://x').searchParams.get('token')
  return token === null ? null : { userId: token }
}

async function listen (t: import('node:test').TestContext, app: FastifyInstance): Promise<(query: string) => string> {
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return (query) => `ws://127.0.0.1:${port}/ws?${query}`
}

test('node identity and the websocket route alone: a one-node service with in-memory routing and storage', async (t) => {
  const app = Fastify({ logger: false })
  await app.register(nodeIdentity, { nodeId: 'alone' })
  await app.register(websocket, { authenticate, path: '/ws' })
  const url = await listen(t, app)

  const client = await TestClient.connect(url('token=alice'))
  assert.equal(client.welcome?.nodeId, 'alone')
  assert.deepEqual(await app.wsc.sendToUser('alice', 'hi'), { id: (await client.next('message')).id, seq: 1 })
  // The decorators the websocket plugin declares exist, in memory.
  assert.equal(app.wscStore.durability, 'memory')
  assert.deepEqual((await app.wscRouter.nodes()).map((node) => node.id), ['alone'])
  assert.equal(app.wscIdentity.current?.port, (app.server.address() as { port: number }).port, 'the listen port fills in the identity')
  // Nothing that was not registered: no probes, no metrics.
  const base = url('').replace(/^ws/, 'http').replace(/\/ws\?$/, '')
  assert.equal((await fetch(`${base}/health`)).status, 404)
  assert.equal(app.hasDecorator('wscMetrics'), false)
  await client.close()
})

test('an id from the listen port (no node id given) on Redis: an upgrade right after listen() is served, not refused while the node starts', async (t) => {
  const prefix = uniquePrefix()
  t.after(() => deletePrefix(SHARED_REDIS, prefix))
  const app = Fastify({ logger: false })
  await app.register(nodeIdentity, { nodeIp: '127.0.0.1' })
  await app.register(redisRouter, { addr: SHARED_REDIS, prefix })
  await app.register(websocket, { authenticate, path: '/ws' })
  const url = await listen(t, app)
  // The node starts in onListen, after listen() resolved: this upgrade arrives while it starts.
  const client = await TestClient.connect(url('token=alice'))
  assert.equal(client.welcome?.nodeId, `127.0.0.1-${(app.server.address() as { port: number }).port}`)
  await client.close()
})

test('health and metrics on top, with their own paths; metrics without a port open none and expose the registry', async (t) => {
  const app = Fastify({ logger: false })
  await app.register(nodeIdentity, { nodeId: 'probed' })
  await app.register(websocket, { authenticate })
  await app.register(health, { livenessPath: '/healthz', readinessPath: '/readyz' })
  await app.register(metrics)
  app.get('/metrics', async (_request, reply) => reply.type(app.wscMetrics.registry.contentType).send(await app.wscMetrics.registry.metrics()))
  const url = await listen(t, app)
  const base = url('').replace(/^ws/, 'http').replace(/\/ws\?$/, '')

  assert.equal(app.wscMetrics.port, undefined)
  assert.deepEqual(await (await fetch(`${base}/healthz`)).json(), { status: 'ok' })
  const ready = await fetch(`${base}/readyz`)
  assert.equal(ready.status, 200)
  assert.equal((await ready.json() as { nodeId: string }).nodeId, 'probed')
  const client = await TestClient.connect(url('token=bob'))
  const text = await (await fetch(`${base}/metrics`)).text()
  assert.match(text, /^wsc_connections 1$/m, 'the app serves the node\'s registry from its own route')
  assert.doesNotMatch(text, /^process_cpu_user_seconds_total/m, 'no process metrics unless asked')
  assert.doesNotMatch(text, /^http_request_duration_seconds/m, 'the app\'s routes are not measured unless asked')
  await client.close()
})

test('leaving out a dependency fails start-up with a message naming the plugin to register', async () => {
  const cases: Array<[string, (app: FastifyInstance) => Promise<unknown>, RegExp]> = [
    ['websocket without node-identity', async (app) => app.register(websocket, { authenticate }), /wsc-node-identity/],
    ['redis-router without node-identity', async (app) => app.register(redisRouter, { addr: '127.0.0.1:6379' }), /wsc-node-identity/],
    ['health without websocket', async (app) => app.register(nodeIdentity).register(health), /wsc-websocket/],
    ['metrics without websocket', async (app) => app.register(nodeIdentity).register(metrics), /wsc-websocket/]
  ]
  for (const [what, register, names] of cases) {
    const app = Fastify({ logger: false })
    await assert.rejects(async () => {
      await register(app)
      await app.ready()
    }, (err: Error) => {
      assert.match(err.message, names, what)
      return true
    }, what)
    await app.close().catch(() => {})
  }
})

test('mysql-store without a pool, and redis-router without a Redis, say what to pass', async () => {
  const noPool = Fastify({ logger: false })
  await assert.rejects(async () => { await noPool.register(mysqlStore).ready() }, /register @fastify\/mysql before it, or pass client, url or host/)
  await noPool.close().catch(() => {})
  const noRedis = Fastify({ logger: false })
  await assert.rejects(async () => { await noRedis.register(nodeIdentity).register(redisRouter).ready() }, /pass client .*, addr, sentinels or clusterNodes/)
  await noRedis.close().catch(() => {})
})

test('a bad option of a plugin registered alone names the plugin, the key and what is allowed', async () => {
  const app = Fastify({ logger: false })
  await assert.rejects(async () => { await app.register(nodeIdentity).register(websocket, { maxConnections: 0 }).ready() }, (err: Error & { code?: string }) => {
    assert.equal(err.code, 'WSC_ERR_CONFIG')
    assert.match(err.message, /websocket\.max_connections = 0 \(from option of wsc-websocket\) is invalid: expected an integer from 1 to/)
    return true
  })
  await app.close().catch(() => {})
})

/** Two processes built of node-identity + redis-router + websocket (+ mysql-store); a send through one reaches a user on the other. */
async function partialCluster (t: import('node:test').TestContext, mysqlUrl?: string): Promise<[ServerProcess, ServerProcess]> {
  const prefix = uniquePrefix()
  t.after(() => deletePrefix(SHARED_REDIS, prefix))
  const fixture = new URL('../fixtures/partial-node.ts', import.meta.url).pathname
  const start = async (nodeId: string): Promise<ServerProcess> => startServer(t, ['--import', 'tsx', fixture], {
    WSC_TEST_NODE_ID: nodeId,
    WSC_TEST_REDIS_ADDR: SHARED_REDIS,
    WSC_TEST_PREFIX: prefix,
    ...(mysqlUrl === undefined ? {} : { WSC_TEST_MYSQL_URL: mysqlUrl })
  }, { metrics: false })
  return Promise.all([start(`${prefix}a`), start(`${prefix}b`)])
}

async function sendThrough (node: ServerProcess, user: string, data: unknown): Promise<{ id: string, seq: number }> {
  const response = await fetch(`${node.baseUrl}/send/${user}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(data) })
  assert.equal(response.status, 200, await response.clone().text())
  return await response.json() as { id: string, seq: number }
}

test('identity + redis-router + websocket in two processes: a send through one node reaches a user on the other', async (t) => {
  const [a, b] = await partialCluster(t)
  const alice = await TestClient.connect(a.wsUrl('token=alice'))
  const sent = await sendThrough(b, 'alice', { text: 'across nodes' })
  const message = await alice.next('message')
  assert.deepEqual([message.id, message.seq, message.data], [sent.id, sent.seq, { text: 'across nodes' }])
  await alice.close()
})

test('+ mysql-store: a user offline when a message was sent through one node gets it from MySQL on the other', async (t) => {
  const db = await testDatabase(t)
  const [a, b] = await partialCluster(t, db.url)
  const sent = await sendThrough(b, 'dora', { text: 'kept for you' })
  assert.equal(await count(db.pool, 'SELECT COUNT(*) AS n FROM wsc_messages'), 1)
  const dora = await TestClient.connect(a.wsUrl('token=dora&since=0'))
  const message = await dora.next('message')
  assert.deepEqual([message.id, message.seq, message.data], [sent.id, 1, { text: 'kept for you' }])
  await dora.close()
})
