/**
 * The plugin in a host app whose Redis cannot be used at start: `listen()` rejects with the cause (node id
 * known before listen), or the node reports itself failed on `/health` and `/ready` (node id from the
 * port); the connection error is logged with its address and cause.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Redis } from 'ioredis'
import wsc, { type WscOptions } from '../../plugins/index.js'
import { capturedLogs, TestClient, waitFor, type LogLine } from '../helper.js'
import { freePort, startRedisServer } from '../redis-harness.js'

/** A host app with fastify-wsc on `redis`, its log lines collected; closed in `t.after`. */
async function hostApp (t: TestContext, options: WscOptions, fastify: FastifyServerOptions = {}): Promise<{ app: FastifyInstance, logs: LogLine[] }> {
  const { lines: logs, stream } = capturedLogs()
  const app = Fastify({ logger: { level: 'info', stream }, ...fastify })
  await app.register(wsc, { metrics: { enabled: false }, authenticate: () => ({ userId: 'u' }), ...options })
  t.after(() => app.close())
  return { app, logs }
}

const refusal = (code: RegExp) => (err: Error & { code?: string }): boolean => {
  assert.equal(err.code, 'WSC_ERR_UNAVAILABLE', err.message)
  assert.match(err.message, code)
  return true
}

test('node id known before listen: a refused password rejects listen() at once with the address and the cause', async (t) => {
  const redis = await startRedisServer(t, ['--requirepass', 'right'])
  const { app, logs } = await hostApp(t, { server: { nodeId: 'host-a' }, redis: { addr: redis.addr, password: 'wrong' } })
  await assert.rejects(app.listen({ port: 0, host: '127.0.0.1' }), refusal(new RegExp(`^unavailable: Redis ${redis.addr}: WRONGPASS .*check redis\\.password`)))
  const logged = logs.filter((line) => line.redis === redis.addr)
  assert.ok(logged.length >= 1)
  assert.deepEqual([logged[0]?.level, logged[0]?.cause], [50, 'WRONGPASS'])
})

test('node id known before listen: no password for a Redis that wants one rejects with NOAUTH', async (t) => {
  const redis = await startRedisServer(t, ['--requirepass', 'right'])
  const { app } = await hostApp(t, { server: { nodeId: 'host-b' }, redis: { addr: redis.addr } })
  await assert.rejects(async () => { await app.ready() }, refusal(new RegExp(`^unavailable: Redis ${redis.addr}: NOAUTH .*set redis\\.password`)))
})

test('an ioredis client of the app\'s with a wrong password: the start is refused the same way', async (t) => {
  const redis = await startRedisServer(t, ['--requirepass', 'right'])
  const client = new Redis({ host: '127.0.0.1', port: redis.port, password: 'wrong', lazyConnect: true })
  client.on('error', () => {})
  t.after(() => { client.disconnect() })
  const { app } = await hostApp(t, { server: { nodeId: 'host-c' }, redis: { client } })
  await assert.rejects(async () => { await app.ready() }, refusal(new RegExp(`^unavailable: Redis ${redis.addr}: WRONGPASS`)))
})

test('Redis unreachable: the start gives up before Fastify\'s pluginTimeout, with ECONNREFUSED and the address', async (t) => {
  const addr = `127.0.0.1:${await freePort()}`
  const { app, logs } = await hostApp(t, { server: { nodeId: 'host-d' }, redis: { addr } }, { pluginTimeout: 3000 })
  await assert.rejects(async () => { await app.ready() }, refusal(new RegExp(`^unavailable: Redis \\(standalone\\) not reachable within 2000 ms: .*Redis ${addr}: connect ECONNREFUSED`)))
  const logged = logs.filter((line) => line.redis === addr)
  assert.equal(logged.length, 1, 'the repeated ECONNREFUSED is logged once')
  assert.deepEqual([logged[0]?.level, logged[0]?.cause], [40, 'ECONNREFUSED'])
})

test('node id from the listen port: a refused start leaves /health and /ready 503 with the cause, and upgrades refused', async (t) => {
  const redis = await startRedisServer(t, ['--requirepass', 'right'])
  const { app, logs } = await hostApp(t, { redis: { addr: redis.addr, password: 'wrong' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const health = await waitFor(async () => {
    const response = await fetch(`${base}/health`)
    return response.status === 503 ? await response.json() as { status: string, detail: string } : undefined
  }, 10_000, '/health to report the failed start')
  assert.equal(health.status, 'failed')
  assert.match(health.detail, new RegExp(`^start-up failed: unavailable: Redis ${redis.addr}: WRONGPASS`))
  const ready = await fetch(`${base}/ready`)
  assert.equal(ready.status, 503)
  const node = (await ready.json() as { checks: Array<{ name: string, state: string, detail: string }> }).checks.find((check) => check.name === 'node')
  assert.equal(node?.state, 'fail')
  assert.match(node?.detail ?? '', /^start-up failed: .*WRONGPASS/)
  assert.equal(app.wsc.health().started, false)
  const upgrade = await TestClient.refusal(`${base.replace('http', 'ws')}/ws`)
  assert.equal(upgrade.statusCode, 503)
  assert.ok(logs.some((line) => line.level === 50 && typeof line.msg === 'string' && line.msg.startsWith('fastify-wsc did not start: unavailable: Redis')), 'the failure is logged')
})
