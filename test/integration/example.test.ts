import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildExampleApp, type ExampleOptions } from '../../example/app.js'
import { signHs256 } from '../../example/jwt.js'
import { exampleServer, requireBuild, startExampleNode } from '../example-node.js'
import { TestClient, waitFor, within } from '../helper.js'
import { deletePrefix, redisClient, SHARED_REDIS, startRedisServer, uniquePrefix } from '../redis-harness.js'
import { startServer, type LogLine } from '../server-process.js'

const ROOT = new URL('../../', import.meta.url).pathname

async function start (t: TestContext, options: ExampleOptions = {}): Promise<{ base: string, ws: string }> {
  const app = await buildExampleApp({ ...options, fastify: { logger: false }, wsc: { server: { nodeId: 'example-test' } } })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return { base: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}/ws` }
}

async function post (url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number, json: Record<string, unknown> }> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  return { status: response.status, json: await response.json() as Record<string, unknown> }
}

test('development mode: the token is the user id (query, header or subprotocol); two users exchange a publish', async (t) => {
  const { ws } = await start(t)
  const alice = await TestClient.connect(`${ws}?token=alice`)
  const bob = await TestClient.connect(ws, { headers: { authorization: 'Bearer bob' } })
  const bobPhone = await TestClient.connect(ws, { protocols: ['wsc.v1', 'wsc.bearer.bob'] })
  alice.send({ type: 'publish', id: 'c-1', to: { user: 'bob' }, data: { text: 'hi' } })
  await alice.next('ack')
  for (const device of [bob, bobPhone]) assert.deepEqual((await device.next('message')).data, { text: 'hi' })
  assert.equal((await TestClient.refusal(ws)).statusCode, 401)
})

test('JWT mode: an HS256 token whose sub is the user id; a bad or missing one is 401', async (t) => {
  const { ws } = await start(t, { jwtSecret: 'test-secret' })
  const token = signHs256({ sub: 'carol', exp: Math.floor(Date.now() / 1000) + 60 }, 'test-secret')
  const carol = await TestClient.connect(`${ws}?token=${token}`)
  assert.equal(carol.socket.readyState, carol.socket.OPEN)
  assert.equal((await TestClient.refusal(`${ws}?token=carol`)).statusCode, 401)
  assert.equal((await TestClient.refusal(`${ws}?token=${signHs256({ sub: 'carol' }, 'wrong')}`)).statusCode, 401)
  assert.equal((await TestClient.refusal(ws)).statusCode, 401)
})

test('POST /api/send reaches a user (with seq), a room and everyone; GET /api/presence and /api/nodes', async (t) => {
  const { base, ws } = await start(t)
  const dave = await TestClient.connect(`${ws}?token=dave`)
  dave.send({ type: 'join', room: 'news' })
  await dave.next('joined')

  const toUser = await post(`${base}/api/send`, { to: { user: 'dave' }, data: { n: 1 } })
  assert.equal(toUser.status, 200)
  assert.equal(toUser.json.seq, 1)
  assert.equal((await dave.next('message')).id, toUser.json.id)

  const toRoom = await post(`${base}/api/send`, { to: { room: 'news' }, data: 'headline' })
  assert.equal(toRoom.json.seq, undefined)
  assert.equal((await dave.next('message')).data, 'headline')
  await post(`${base}/api/send`, { to: { broadcast: true }, data: 'all' })
  assert.deepEqual((await dave.next('message')).to, { broadcast: true })

  const presence = await (await fetch(`${base}/api/presence/dave`)).json() as { online: boolean, connections: Array<{ nodeId: string }> }
  assert.equal(presence.online, true)
  assert.equal(presence.connections[0]?.nodeId, 'example-test')
  const offline = await (await fetch(`${base}/api/presence/nobody`)).json() as { online: boolean }
  assert.equal(offline.online, false)
  const nodes = await (await fetch(`${base}/api/nodes`)).json() as { nodes: Array<{ id: string, connections: number }> }
  assert.deepEqual(nodes.nodes.map((n) => [n.id, n.connections]), [['example-test', 1]])
})

test('POST /api/send with an Idempotency-Key: a retry stores nothing new and answers the first id and seq', async (t) => {
  const { base, ws } = await start(t)
  const headers = { 'idempotency-key': 'invoice-7:paid' }
  const first = await post(`${base}/api/send`, { to: { user: 'erin' }, data: { paid: 7 } }, headers)
  const retry = await post(`${base}/api/send`, { to: { user: 'erin' }, data: { paid: 7 } }, headers)
  assert.equal(first.status, 200)
  assert.deepEqual(retry.json, first.json)
  assert.deepEqual(first.json, { id: 'invoice-7:paid', seq: 1 })
  const bad = await post(`${base}/api/send`, { to: { user: 'erin' }, data: 1 }, { 'idempotency-key': 'not a key' })
  assert.equal(bad.status, 400)
  assert.match(String(bad.json.message), /id must be 1 to 128 characters/)
  const erin = await TestClient.connect(`${ws}?token=erin&since=0`)
  assert.deepEqual((await erin.next('message')).id, 'invoice-7:paid')
  erin.send({ type: 'ping' })
  await erin.next('pong')
  assert.equal(erin.frames.filter((frame) => frame.type === 'message').length, 0, 'one message, not two')
  await erin.close()
})

test('POST /api/send refuses bad bodies with 400 and one sentence saying what to fix', async (t) => {
  const { base } = await start(t)
  const refusals: Array<[unknown, string]> = [
    [{ to: { user: 'x' } }, 'data is required'],
    [{ data: 1 }, 'to is required'],
    [{ to: { planet: 'mars' }, data: 1 }, 'to must be one of user, room, connection, broadcast'],
    [{ to: { user: 'x', room: 'y' }, data: 1 }, 'to must be one of user, room, connection, broadcast'],
    [{ to: 'bob', data: 1 }, 'to must be one of user, room, connection, broadcast'],
    [[{ to: { user: 'x' }, data: 1 }], 'body must be object'],
    [{ to: { broadcast: false }, data: 1 }, 'to.broadcast must be true'],
    [{ to: { user: '' }, data: 1 }, 'to.user must NOT have fewer than 1 characters']
  ]
  for (const [body, message] of refusals) {
    const answer = await post(`${base}/api/send`, body)
    assert.deepEqual(answer, { status: 400, json: { statusCode: 400, code: 'FST_ERR_VALIDATION', error: 'Bad Request', message } }, JSON.stringify(body))
  }
  const tooBig = await post(`${base}/api/send`, { to: { user: 'x' }, data: 'x'.repeat(70_000) })
  assert.equal(tooBig.status, 400)
  assert.equal(tooBig.json.code, 'WSC_ERR_PAYLOAD')
})

test('WSC_API_TOKEN protects /api', async (t) => {
  const { base } = await start(t, { apiToken: 'ops' })
  assert.equal((await post(`${base}/api/send`, { to: { user: 'x' }, data: 1 })).status, 401)
  assert.equal((await post(`${base}/api/send`, { to: { user: 'x' }, data: 1 }, { authorization: 'Bearer ops' })).status, 200)
})

test('before the node started, POST /api/send answers 503 with Retry-After: starting, retry', async (t) => {
  // No node id: it is <ip>-<port>, so the node starts once the server listens.
  const app = await buildExampleApp({ fastify: { logger: false } })
  t.after(() => app.close())
  await app.ready()
  const send = async (): Promise<{ statusCode: number, headers: Record<string, unknown>, json: unknown }> => {
    const reply = await app.inject({ method: 'POST', url: '/api/send', payload: { to: { user: 'x' }, data: 1 } })
    return { statusCode: reply.statusCode, headers: reply.headers, json: reply.json() }
  }
  const early = await send()
  assert.equal(early.statusCode, 503)
  assert.equal(early.headers['retry-after'], '2')
  assert.deepEqual(early.json, { statusCode: 503, code: 'WSC_ERR_CLOSED', error: 'Service Unavailable', message: 'the node is starting; retry shortly' })

  await app.listen({ port: 0, host: '127.0.0.1' })
  const later = await waitFor(async () => { const answer = await send(); return answer.statusCode === 200 ? answer : undefined }, 5000, 'the send to be taken once the node started')
  assert.deepEqual(Object.keys(later.json as object).sort(), ['id', 'seq'])
})

// ---- the example server as `npm start` and the image run it (dist/example/server.js) ----

/** This process's environment without what would pull in Redis, MySQL, a config file or production mode. */
function exampleEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const name of ['REDIS_ADDR', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES', 'MYSQL_URL', 'MYSQL_HOST', 'WSC_CONFIG', 'NODE_OPTIONS', 'NODE_ENV', 'WSC_JWT_SECRET', 'WSC_API_TOKEN']) delete env[name]
  return { ...env, HOST: '127.0.0.1', PORT: '0', METRICS_HOST: '127.0.0.1', METRICS_PORT: '0', ...extra }
}

/** Runs the example server until it exits by itself (it is expected to refuse to start). */
async function runToExit (t: TestContext, extra: Record<string, string>): Promise<{ code: number | null, stdout: string, stderr: string }> {
  requireBuild()
  const child = spawn(process.execPath, [exampleServer], { env: exampleEnv(extra), stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await within(new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode))), 20_000, `the example server to exit (stdout: ${stdout})`)
  return { code, stdout, stderr }
}

test('NODE_ENV=production refuses development auth and an open /api: exit code 2 and one line naming what to set', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{}, /^NODE_ENV=production: set WSC_JWT_SECRET \([^)]+\) and WSC_API_TOKEN \([^)]+\)\n$/],
    [{ WSC_JWT_SECRET: 's3cret' }, /^NODE_ENV=production: set WSC_API_TOKEN \([^)]+\)\n$/],
    [{ WSC_API_TOKEN: 'ops' }, /^NODE_ENV=production: set WSC_JWT_SECRET \([^)]+\)\n$/],
    [{ WSC_JWT_SECRET: '', WSC_API_TOKEN: 'ops' }, /^NODE_ENV=production: set WSC_JWT_SECRET \([^)]+\)\n$/]
  ]
  for (const [env, line] of cases) {
    const { code, stdout, stderr } = await runToExit(t, { NODE_ENV: 'production', ...env })
    assert.equal(code, 2, JSON.stringify(env))
    assert.match(stderr, line, JSON.stringify(env))
    assert.equal(stdout, '', 'it stops before the server starts')
  }

  // Both set: it starts, with JWTs only and a closed /api.
  const server = await startServer(t, [exampleServer], { NODE_ENV: 'production', WSC_JWT_SECRET: 's3cret', WSC_API_TOKEN: 'ops' })
  assert.equal((await TestClient.refusal(server.wsUrl('token=alice'))).statusCode, 401, 'no development tokens')
  const alice = await TestClient.connect(server.wsUrl(`token=${signHs256({ sub: 'alice' }, 's3cret')}`))
  assert.equal(alice.welcome?.userId, 'alice')
  await alice.close()
  assert.equal((await post(`${server.baseUrl}/api/send`, { to: { user: 'alice' }, data: 1 })).status, 401)
  assert.equal((await post(`${server.baseUrl}/api/send`, { to: { user: 'alice' }, data: 1 }, { authorization: 'Bearer ops' })).status, 200)
})

test('a config error is one line, exit code 2, pointing to docs/configuration.md where the package has it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsc-example-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'config.yaml')
  writeFileSync(file, 'websocket:\n  max_conections: 5\n')
  const { code, stdout, stderr } = await runToExit(t, { WSC_CONFIG: file })
  assert.equal(code, 2)
  assert.equal(stdout, '')
  assert.match(stderr, /^config: unknown key websocket\.max_conections in [^\n]*\n$/, 'one line, no stack trace')

  const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { name: string, files: string[], homepage: string, repository: { url: string } }
  const inPackage = new RegExp(`node_modules/${pkg.name}/(\\S+\\.md)\\b`).exec(stderr)?.[1]
  assert.ok(inPackage !== undefined, `names the file inside the installed package: ${stderr}`)
  assert.ok(existsSync(`${ROOT}${inPackage}`), `${inPackage} exists`)
  assert.ok(pkg.files.some((entry) => inPackage === entry || inPackage.startsWith(`${entry}/`)), `${inPackage} ships in the npm tarball (files)`)
  const repository = pkg.repository.url.replace(/^git\+/, '').replace(/\.git$/, '')
  assert.ok(pkg.homepage.startsWith(repository))
  assert.ok(stderr.includes(`${repository}/blob/main/${inPackage}`), `and its URL under the package's repository: ${stderr}`)
})

test('the start-up log gives the page, WebSocket and metrics URLs, and every line names its level', async (t) => {
  const server = await startServer(t, [exampleServer])
  const line = await server.waitForLog((entry) => typeof entry.page === 'string', 10_000, 'the start-up line')
  const { page, ws, metrics } = line as LogLine & { page: string, ws: string, metrics: string }
  assert.equal(line.msg, `fastify-wsc example: page ${page}  ws ${ws}  metrics ${metrics}`)
  assert.equal(page, `${server.baseUrl}/`)
  assert.equal(metrics, server.metricsUrl)
  const html = await fetch(page)
  assert.equal(html.status, 200)
  assert.match(html.headers.get('content-type') ?? '', /^text\/html/)
  const alice = await TestClient.connect(ws.replace('<user>', 'alice'))
  assert.equal(alice.welcome?.userId, 'alice')
  await alice.close()
  assert.match(await (await fetch(metrics)).text(), /^wsc_connections /m)
  assert.deepEqual(server.logs.filter((entry) => typeof entry.level !== 'string'), [], 'levels are names ("info"), not numbers')
  assert.equal(line.level, 'info')
})

test('the port a node registers is the one it listens on when POD_NAME is set and WSC_NODE_PORT is not', async (t) => {
  const prefix = uniquePrefix()
  t.after(() => deletePrefix(SHARED_REDIS, prefix))
  // A heartbeat far away: only the entry written when the server listens can carry the port in time.
  const node = await startExampleNode(t, { nodeId: 'port-from-listen', redisAddr: SHARED_REDIS, prefix, env: { WSC_NODE_HEARTBEAT_INTERVAL: '60s' } })
  const listenPort = Number(new URL(node.baseUrl).port)
  const db = redisClient(t)
  const entry = await waitFor(async () => {
    const value = JSON.parse(await db.get(`${prefix}nodes:port-from-listen`) ?? 'null') as { port: number | null } | null
    return value?.port === null ? undefined : value ?? undefined
  }, 5000, 'the registry entry to carry a port')
  assert.equal(entry.port, listenPort)
  const { nodes } = await (await fetch(`${node.baseUrl}/api/nodes`)).json() as { nodes: Array<{ id: string, port: number | null }> }
  assert.deepEqual(nodes.map((n) => [n.id, n.port]), [['port-from-listen', listenPort]])
})

test('logs carry level names, so the guide\'s `kubectl logs … | grep` finds the errors', async (t) => {
  const guide = readFileSync(`${ROOT}docs/deploy-kubernetes.md`, 'utf8')
  const grep = /^kubectl logs [^|\n]*\| (grep [^#\n]*?)\s*(?:#.*)?$/m.exec(guide)?.[1]
  assert.ok(grep !== undefined, 'docs/deploy-kubernetes.md shows how to find errors in the logs')

  const redis = await startRedisServer(t)
  const node = await startExampleNode(t, { nodeId: 'log-levels', redisAddr: redis.addr })
  await redis.stop()
  // A send that cannot be accepted with Redis down is a 503 the app logs as an error.
  const answer = await post(`${node.baseUrl}/api/send`, { to: { user: 'ann' }, data: 1 })
  assert.equal(answer.status, 503)
  const error = await node.waitForLog((line) => line.level === 'error', 5000, 'an error line')
  assert.equal(error.msg, answer.json.message)

  const text = node.logs.map((line) => JSON.stringify(line)).join('\n') + '\n'
  const found = spawnSync('sh', ['-c', grep], { input: text, encoding: 'utf8' }).stdout.split('\n').filter((line) => line !== '')
  const errors = node.logs.filter((line) => line.level === 'error' || line.level === 'fatal').map((line) => JSON.stringify(line))
  assert.ok(errors.length > 0)
  for (const line of errors) assert.ok(found.includes(line), `\`${grep}\` finds ${line}`)
  assert.ok(found.length < node.logs.length, `\`${grep}\` leaves out the info lines`)
})
