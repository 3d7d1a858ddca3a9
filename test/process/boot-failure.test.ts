/**
 * The example server when its dependencies cannot be used at boot: it logs the cause with the address,
 * once per kind, and exits 1 naming it — never Fastify's plugin-timeout text, never a process that
 * listens without a node behind it.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { exampleServer, requireBuild } from '../example-node.js'
import { within } from '../helper.js'
import { freePort, startRedisServer } from '../redis-harness.js'
import { MYSQL_HOST, MYSQL_PORT } from '../backends.js'
import { spawnServer, type LogLine, type ServerOutput } from '../server-process.js'

const FASTIFY_TIMEOUT = /did not start in time|hook timed out/

/** The example server with the given environment; the node id comes from POD_NAME unless `POD_NAME: ''`. */
function boot (t: TestContext, env: Record<string, string>): ServerOutput {
  requireBuild()
  return spawnServer(t, [exampleServer], { HOSTNAME: '', NODE_ID: '', WSC_NODE_HEARTBEAT_INTERVAL: '500ms', ...env })
}

const text = (line: LogLine): string => typeof line.msg === 'string' ? line.msg : ''

/** Waits for the exit and checks what every failed boot has in common; returns the `start-up failed` line. */
async function failedBoot (server: ServerOutput, cause: RegExp): Promise<LogLine> {
  const exit = await within(server.exited, 30_000, 'the server to exit')
  const everything = [...server.logs.map((line) => JSON.stringify(line)), server.stderr()].join('\n')
  assert.equal(exit.code, 1, `exit code 1; output:\n${everything.slice(-3000)}`)
  assert.doesNotMatch(everything, FASTIFY_TIMEOUT, 'never Fastify\'s plugin-timeout text')
  const last = server.logs.find((line) => text(line).startsWith('start-up failed: '))
  assert.ok(last !== undefined, `a start-up failed line; output:\n${everything.slice(-3000)}`)
  assert.match(text(last), cause)
  assert.equal(last.level, 'error')
  return last
}

/** The connection errors logged for `addr`: each kind once (rate-limited), with the address and the cause. */
function connectionErrors (server: ServerOutput, addr: string): LogLine[] {
  const lines = server.logs.filter((line) => line.redis === addr)
  const kinds = new Set(lines.map(text))
  assert.equal(lines.length, kinds.size, `each kind of connection error is logged once: ${lines.map(text).join(' | ')}`)
  return lines
}

test('Redis unreachable at boot: ECONNREFUSED with host:port is logged once, then the server exits 1 naming it', async (t) => {
  const addr = `127.0.0.1:${await freePort()}`
  const server = boot(t, { POD_NAME: 'boot-unreachable', REDIS_ADDR: addr })
  const last = await failedBoot(server, new RegExp(`not reachable within \\d+ ms.*Redis ${addr}: connect ECONNREFUSED`))
  const [logged] = connectionErrors(server, addr)
  assert.deepEqual([logged?.level, logged?.cause, text(logged ?? {})], ['warn', 'ECONNREFUSED', `Redis ${addr}: connect ECONNREFUSED ${addr}`])
  assert.equal((last.err as { code?: string }).code, 'WSC_ERR_UNAVAILABLE')
})

test('Redis refuses the password (WRONGPASS): the server exits 1 at once, naming the address and the setting to check', async (t) => {
  const redis = await startRedisServer(t, ['--requirepass', 'right'])
  const server = boot(t, { POD_NAME: 'boot-wrongpass', REDIS_ADDR: redis.addr, REDIS_PASSWORD: 'wrong' })
  await failedBoot(server, new RegExp(`Redis ${redis.addr}: WRONGPASS .*check redis\\.password`))
  const [logged] = connectionErrors(server, redis.addr)
  assert.deepEqual([logged?.level, logged?.cause], ['error', 'WRONGPASS'])
  assert.equal(server.logs.some((line) => /^Server listening/.test(text(line))), false, 'it never listened')
})

test('Redis wants a password and none is set (NOAUTH): the server exits 1 at once, saying to set it', async (t) => {
  const redis = await startRedisServer(t, ['--requirepass', 'right'])
  const server = boot(t, { POD_NAME: 'boot-noauth', REDIS_ADDR: redis.addr })
  await failedBoot(server, new RegExp(`Redis ${redis.addr}: NOAUTH .*set redis\\.password`))
  assert.equal(connectionErrors(server, redis.addr)[0]?.cause, 'NOAUTH')
})

test('node id from the listen port (the node starts after listen): a refused password still exits 1, never a half-started node', async (t) => {
  const redis = await startRedisServer(t, ['--requirepass', 'right'])
  const server = boot(t, { POD_NAME: '', REDIS_ADDR: redis.addr, REDIS_PASSWORD: 'wrong' })
  await server.waitForLog((line) => /^Server listening at /.test(text(line)), 20_000, 'the server to listen')
  await failedBoot(server, new RegExp(`Redis ${redis.addr}: WRONGPASS`))
  assert.ok(server.logs.some((line) => text(line).startsWith('fastify-wsc did not start: ')), 'the plugin says its node did not start')
})

test('MySQL refused or unreachable at boot: one line naming host:port and the cause, exit 1', async (t) => {
  const refused = boot(t, { POD_NAME: 'boot-mysql', MYSQL_URL: `mysql://root:wrong-password@${MYSQL_HOST}:${MYSQL_PORT}/wsc_boot` })
  await within(refused.exited, 20_000, 'the server to exit')
  assert.equal(refused.child.exitCode, 1)
  assert.match(refused.stderr(), new RegExp(`^start-up failed: unavailable: MySQL ${MYSQL_HOST}:${MYSQL_PORT}/wsc_boot: Access denied .*\\(ER_ACCESS_DENIED_ERROR\\)\\n$`))
  assert.doesNotMatch(refused.stderr(), /wrong-password/, 'the password is not printed')

  const port = await freePort()
  const unreachable = boot(t, { POD_NAME: 'boot-mysql', MYSQL_URL: `mysql://root@127.0.0.1:${port}/wsc_boot` })
  await within(unreachable.exited, 20_000, 'the server to exit')
  assert.equal(unreachable.child.exitCode, 1)
  assert.match(unreachable.stderr(), new RegExp(`^start-up failed: unavailable: MySQL 127\\.0\\.0\\.1:${port}/wsc_boot: connect ECONNREFUSED 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)\\n$`))
})
