/**
 * fastify-wsc inside an API that already exists: one with its own @fastify/websocket route,
 * fastify-metrics on its own port, @fastify/under-pressure, @fastify/redis, @fastify/mysql and its own
 * GET /health — as a team would have it before adding real-time push.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fastifyMysql, { type MySQLPromisePool } from '@fastify/mysql'
import fastifyRedis from '@fastify/redis'
import underPressure from '@fastify/under-pressure'
import fastifyWebsocket from '@fastify/websocket'
import Fastify from 'fastify'
import fastifyMetrics from 'fastify-metrics'
import WebSocket from 'ws'
import wsc, { bearer } from '../../plugins/index.js'
import { count, testDatabase } from '../backends.js'
import { TestClient, waitFor, within } from '../helper.js'
import { deletePrefix, SHARED_REDIS, uniquePrefix } from '../redis-harness.js'

declare module 'fastify' {
  interface FastifyInstance {
    // @fastify/mysql declares no decorator type of its own.
    mysql: MySQLPromisePool
  }
}

/** TCP servers listening in this process: the app must open none besides its own. */
const listeningServers = (): number => process.getActiveResourcesInfo().filter((type) => type === 'TCPServerWrap').length

test('an existing API keeps its routes, its ws route, its metrics and its /health; fastify-wsc reuses its Redis and MySQL', async (t) => {
  const db = await testDatabase(t)
  const prefix = uniquePrefix()
  t.after(() => deletePrefix(SHARED_REDIS, prefix))
  const before = listeningServers()

  // The app as it was.
  const app = Fastify({ logger: false })
  t.after(() => app.close())
  await app.register(fastifyWebsocket)
  app.get('/echo', { websocket: true }, (socket) => {
    socket.on('message', (data) => socket.send(`echo: ${data.toString()}`))
  })
  await app.register(fastifyMetrics.default, { endpoint: '/metrics' })
  await app.register(underPressure, { maxEventLoopDelay: 10_000 })
  const [host, port] = SHARED_REDIS.split(':')
  await app.register(fastifyRedis, { host, port: Number(port) })
  await app.register(fastifyMysql, { promise: true, uri: db.url, connectionLimit: 4 })
  app.get('/health', async () => ({ app: 'healthy' }))

  // What it adds.
  await app.register(wsc, {
    redis: { client: app.redis, prefix },
    mysql: { client: app.mysql },
    authenticate: bearer((token) => token)
  })
  app.post<{ Params: { user: string }, Body: { text: string } }>('/notify/:user', async (request) => app.wsc.sendToUser(request.params.user, request.body))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const wsBase = base.replace(/^http/, 'ws')

  assert.equal(listeningServers(), before + 1, 'no port besides the app\'s own')
  assert.deepEqual(await (await fetch(`${base}/health`)).json(), { app: 'healthy' }, 'the app\'s own /health')
  const appMetrics = await fetch(`${base}/metrics`)
  assert.equal(appMetrics.status, 200)
  const appMetricsText = await appMetrics.text()
  assert.match(appMetricsText, /^http_request_duration_seconds_count\{.*route="\/health"/m, 'the app\'s fastify-metrics keeps measuring its routes')
  assert.match(appMetricsText, /^wsc_connections 0$/m, 'the node\'s metrics join the registry the app\'s fastify-metrics serves')
  assert.equal(app.wscMetrics.registry, app.metrics.client.register)
  // Ready once the Pub/Sub loop through the app's Redis client is verified; readiness through the app's under-pressure.
  await waitFor(async () => (await fetch(`${base}/ready`)).status === 200, 10_000, '/ready to answer 200')

  // The app's ws route on the shared @fastify/websocket.
  const echo = new WebSocket(`${wsBase}/echo`)
  const echoed = within(new Promise<string>((resolve) => echo.once('message', (data) => resolve(data.toString()))), 5000, 'the echo')
  echo.once('open', () => echo.send('hello'))
  assert.equal(await echoed, 'echo: hello')
  echo.close()

  // /ws with the browser client's subprotocol auth; a message from one of the app's routes reaches it.
  const alice = await TestClient.connect(`${wsBase}/ws`, { protocols: ['wsc.v1', 'wsc.bearer.alice'] })
  assert.equal(alice.socket.protocol, 'wsc.v1', 'the token is never echoed back')
  const sent = await (await fetch(`${base}/notify/alice`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'from a route' }) })).json() as { id: string, seq: number }
  const message = await alice.next('message')
  assert.deepEqual([message.id, message.seq, message.data], [sent.id, 1, { text: 'from a route' }])

  // Durable through the app's pool: a user who was offline gets it on connect; the rows are in its database.
  await app.wsc.sendToUser('bob', { text: 'while you were away' })
  assert.equal(await count(db.pool, 'SELECT COUNT(*) AS n FROM wsc_messages'), 2)
  const bob = await TestClient.connect(`${wsBase}/ws?since=0`, { headers: { authorization: 'Bearer bob' } })
  assert.deepEqual((await bob.next('message')).data, { text: 'while you were away' })
  // Routed through the app's Redis: this node is registered under the prefix.
  assert.ok(await app.redis.exists(`${prefix}nodes:${app.wsc.nodeId}`), 'registered through the app\'s client')
  await Promise.all([alice.close(), bob.close()])
})

test('the host environment is not configuration: REDIS_ADDR, MYSQL_HOST, METRICS_PORT, POD_NAME meant for something else are ignored', async (t) => {
  const foreign: Record<string, string> = {
    REDIS_ADDR: '127.0.0.1:1',
    MYSQL_HOST: '127.0.0.1',
    MYSQL_DATABASE: 'somebody_elses',
    METRICS_PORT: '9',
    POD_NAME: 'the-app-pod',
    WSC_CONFIG: '/nonexistent/config.yaml'
  }
  const saved = Object.fromEntries(Object.keys(foreign).map((name) => [name, process.env[name]]))
  Object.assign(process.env, foreign)
  t.after(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  })
  const before = listeningServers()
  const app = Fastify({ logger: false })
  t.after(() => app.close())
  await app.register(wsc, { authenticate: bearer((token) => token) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }

  assert.equal(listeningServers(), before + 1, 'no metrics server on METRICS_PORT')
  assert.equal(app.wscMetrics.port, undefined)
  assert.equal(app.wscStore.durability, 'memory', 'neither Redis nor MySQL from the environment')
  assert.equal(app.hasDecorator('wscRedis'), false)
  assert.match(app.wsc.nodeId, new RegExp(`-${port}$`), 'the node id is <ip>-<port>, not POD_NAME')
  const client = await TestClient.connect(`ws://127.0.0.1:${port}/ws?token=carol`)
  assert.equal((await app.wsc.sendToUser('carol', 'x')).seq, 1)
  await client.next('message')
  await client.close()
})
