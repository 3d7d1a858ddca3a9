import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Frame, TestClient, waitFor, within } from '../helper.js'
import { startServer, type ServerProcess } from '../server-process.js'

const exampleServer = new URL('../../dist/example/server.js', import.meta.url).pathname
const fixture = new URL('../fixtures/server.ts', import.meta.url).pathname

function requireBuild (): void {
  if (!existsSync(exampleServer)) throw new Error('dist/example/server.js is missing: run `npm run build` before the process tests')
}

interface Tracked {
  client: TestClient
  closedAt: number | undefined
}

async function connectMany (server: ServerProcess, count: number): Promise<Tracked[]> {
  const tracked: Tracked[] = []
  for (let start = 0; start < count; start += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, count - start) }, (_, i) => TestClient.connect(server.wsUrl(`token=user-${start + i}`))))
    for (const client of batch) {
      const entry: Tracked = { client, closedAt: undefined }
      client.socket.on('close', () => { entry.closedAt = performance.now() })
      tracked.push(entry)
    }
  }
  return tracked
}

async function readyStatus (server: ServerProcess): Promise<{ status: number, body: { status: string, checks: Array<{ name: string, state: string, detail: string }> } }> {
  const response = await fetch(`${server.baseUrl}/ready`)
  return { status: response.status, body: await response.json() as never }
}

test('SIGTERM with 200 clients: /ready 503 first, then reconnect + 1012 for each, spread over the window; exit 0', async (t) => {
  requireBuild()
  const windowMs = 4000
  const jitterMs = 2000
  const server = await startServer(t, [exampleServer], { WSC_DRAIN_WINDOW: `${windowMs}ms`, WSC_DRAIN_DELAY: '1s', WSC_RECONNECT_JITTER: `${jitterMs}ms` })
  const clients = await connectMany(server, 200)
  assert.equal((await readyStatus(server)).status, 200)

  server.child.kill('SIGTERM')
  const notReady = await waitFor(async () => {
    const ready = await readyStatus(server)
    return ready.status === 503 ? ready : undefined
  }, 5000, '/ready to answer 503')
  assert.equal(clients.filter((c) => c.closedAt !== undefined || c.client.frames.some((f) => f.type === 'reconnect')).length, 0, 'no client was told to go before /ready answered 503')
  assert.equal(notReady.body.status, 'unavailable')
  assert.deepEqual(notReady.body.checks.find((check) => check.name === 'node'), { name: 'node', state: 'fail', latencyMs: null, detail: 'draining' })

  const refusal = await TestClient.refusal(server.wsUrl('token=newcomer'))
  assert.equal(refusal.statusCode, 503)
  assert.equal(refusal.headers['retry-after'], '5')
  assert.match(refusal.body, /draining/)

  const closes = await within(Promise.all(clients.map((c) => c.client.closed)), 20_000, 'every client to be closed')
  assert.deepEqual(new Set(closes.map((close) => close.code)), new Set([1012]))
  const afterMs: number[] = []
  for (const { client } of clients) {
    const last = client.frames.at(-1) as Frame
    assert.equal(last.type, 'reconnect', 'the reconnect frame comes last, right before the close')
    assert.ok(Number.isInteger(last.afterMs) && (last.afterMs as number) >= 0 && (last.afterMs as number) <= jitterMs, `afterMs ${String(last.afterMs)}`)
    afterMs.push(last.afterMs as number)
  }
  assert.ok(new Set(afterMs).size > 20, 'afterMs is jittered')
  const closedAt = clients.map((c) => c.closedAt as number)
  const spread = Math.max(...closedAt) - Math.min(...closedAt)
  assert.ok(spread >= windowMs / 2, `closes are spread over the window: first and last ${Math.round(spread)} ms apart`)

  const exit = await within(server.exited, 20_000, 'the process to exit')
  assert.deepEqual(exit, { code: 0, signal: null })
  assert.ok(server.logs.some((line) => line.msg === 'drained: connections moved, node deregistered' && line.connections === 200))
})

test('a second SIGTERM during the drain exits at once', async (t) => {
  requireBuild()
  const server = await startServer(t, [exampleServer], { WSC_DRAIN_WINDOW: '20s' })
  const clients = await connectMany(server, 20)
  server.child.kill('SIGTERM')
  await within(clients[0]?.client.closed ?? Promise.reject(new Error('no client')), 5000, 'the first drain close')
  server.child.kill('SIGTERM')
  const exit = await within(server.exited, 10_000, 'the process to exit')
  assert.deepEqual(exit, { code: 1, signal: null })
  const closes = await within(Promise.all(clients.map((c) => c.client.closed)), 5000, 'every socket to end')
  assert.ok(closes.some((close) => close.code === 1006), 'clients the drain had not reached yet lost their connection: the drain was cut short')
  assert.ok(server.logs.some((line) => line.msg === 'second signal: exiting at once'))
})

test('SIGTERM lets sends in flight settle before the store closes: every resolved send is in the store', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsc-drain-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const sendsLog = join(dir, 'sends.jsonl')
  const dump = join(dir, 'store.json')
  const server = await startServer(t, ['--import', 'tsx', fixture], {
    WSC_DRAIN_WINDOW: '500ms',
    WSC_TEST_APPEND_DELAY_MS: '150',
    WSC_TEST_SENDS_LOG: sendsLog,
    WSC_TEST_STORE_DUMP: dump
  })
  const bob = await TestClient.connect(server.wsUrl('token=bob'))
  server.child.send({ type: 'produce', user: 'bob', concurrency: 8 })
  const entries = (): Array<{ event: string, key?: number, id?: string, seq?: number, code?: string }> =>
    existsSync(sendsLog) ? readFileSync(sendsLog, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line)) : []
  await waitFor(async () => entries().filter((e) => e.event === 'resolved').length >= 16 ? true : undefined, 10_000, 'sends to resolve')

  server.child.kill('SIGTERM')
  const exit = await within(server.exited, 20_000, 'the process to exit')
  assert.deepEqual(exit, { code: 0, signal: null })
  assert.equal((await bob.closed).code, 1012)

  const log = entries()
  const drainAt = log.findIndex((e) => e.event === 'drain')
  assert.ok(drainAt > 0, 'the drain began while sends were running')
  const started = new Set(log.filter((e) => e.event === 'start').map((e) => e.key))
  const settled = new Set(log.filter((e) => e.event === 'resolved' || e.event === 'rejected').map((e) => e.key))
  assert.deepEqual([...started].filter((key) => !settled.has(key)), [], 'no send was left in flight at exit')
  assert.ok(log.filter((e) => e.event === 'rejected').every((e) => e.code === 'WSC_ERR_CLOSED'), 'late sends are refused with WSC_ERR_CLOSED')
  const resolved = log.filter((e) => e.event === 'resolved')
  assert.ok(resolved.some((e) => log.indexOf(e) > drainAt), 'sends in flight during the drain resolved')

  const stored = new Map((JSON.parse(readFileSync(dump, 'utf8')) as Array<{ id: string, seq: number }>).map((m) => [m.id, m.seq]))
  const missing = resolved.filter((e) => stored.get(e.id as string) !== e.seq)
  assert.deepEqual(missing, [], 'every send that resolved is in the store, with its seq')
})
