import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { WebSocketServer, type WebSocket } from 'ws'
import { BenchProcess, paced } from '../../bench/harness.js'
import { LATEST_RESULTS, RECORDED_RESULTS, resultsTable, type Results } from '../../bench/results.js'
import { startRedisServer } from '../redis-harness.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const git = (...args: string[]): number | null => spawnSync('git', args, { cwd: ROOT, stdio: 'ignore' }).status

test('npm run bench writes its figures to a file git ignores, so a run never changes a tracked file', () => {
  const latest = relative(ROOT, LATEST_RESULTS)
  assert.equal(git('check-ignore', '-q', latest), 0, `${latest} is ignored`)
  assert.notEqual(git('ls-files', '--error-unmatch', latest), 0, `${latest} is not tracked`)
  // The runner writes through writeLatestResults only.
  const runner = readFileSync(`${ROOT}bench/run.ts`, 'utf8')
  assert.match(runner, /writeLatestResults\(/)
  assert.doesNotMatch(runner, /writeFileSync|appendFileSync|createWriteStream/)
})

test('docs/performance.md shows the recorded full run, which is tracked', () => {
  const recorded = JSON.parse(readFileSync(RECORDED_RESULTS, 'utf8')) as Results
  assert.equal(git('ls-files', '--error-unmatch', relative(ROOT, RECORDED_RESULTS)), 0, 'the recorded run is tracked')
  assert.equal(recorded.profile, 'full')
  const doc = readFileSync(`${ROOT}docs/performance.md`, 'utf8')
  assert.ok(doc.includes(`## Results (full run, Node ${recorded.node}, ${recorded.cores} cores, commit ${recorded.commit})`), 'the heading names the recorded run')
  assert.ok(doc.includes(resultsTable(recorded.rows)), 'the table is the recorded run\'s, as the runner prints it')
})

test('the load generator counts every message sent once its count is armed: none lost to the start of a run', { timeout: 60_000 }, async (t) => {
  // A server that greets each connection as the protocol does and sends frames when told to.
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await once(wss, 'listening')
  const sockets: WebSocket[] = []
  wss.on('connection', (socket) => {
    sockets.push(socket)
    socket.send(JSON.stringify({ type: 'welcome' }))
  })
  const burst = (perSocket: number): void => {
    for (let i = 0; i < perSocket; i++) for (const socket of sockets) socket.send(JSON.stringify({ type: 'message', data: { i, t: performance.timeOrigin + performance.now() } }))
  }
  const clients = await BenchProcess.start('./clients/ws-clients.ts')
  // The load generator first: the server's close waits for its connections.
  t.after(async () => {
    await clients.stop()
    for (const socket of wss.clients) socket.terminate()
    await new Promise((resolve) => wss.close(resolve))
  })
  const { port } = wss.address() as AddressInfo
  await clients.call('open', { base: `ws://127.0.0.1:${port}/ws`, count: 20, concurrency: 20, userPrefix: 'u', sampleEvery: 1 })
  assert.equal(sockets.length, 20)

  await assert.rejects(clients.call('wait', {}), /wait without arm/)
  for (let round = 0; round < 5; round++) {
    // The sends start the moment the count is armed, as the benchmark's do.
    await clients.call('arm', { total: 20 * 50 })
    await assert.rejects(clients.call('arm', { total: 1 }), /already armed/)
    burst(50)
    const result = await clients.call<{ received: number, unarmed: number, samples: number }>('wait', { timeoutMs: 10_000 })
    assert.deepEqual([result.received, result.samples, result.unarmed], [1000, 1000, 0], `round ${round}`)
  }
})

test('paced sends keep at most the window unsettled and resolve once every one settled', async () => {
  let unsettled = 0
  let most = 0
  let settled = 0
  await paced(100, { maxInFlight: 8 }, async () => {
    most = Math.max(most, ++unsettled)
    await new Promise((resolve) => setTimeout(resolve, 1))
    unsettled--
    settled++
  })
  assert.deepEqual([most, settled], [8, 100])
  await assert.rejects(paced(10, { maxInFlight: 4 }, async (i) => { if (i === 3) throw new Error('refused') }), /refused/)
})

test('the minimal router baseline carries publishes to users on another node and acks each one; a publish to nobody is refused', { timeout: 60_000 }, async (t) => {
  const redis = await startRedisServer(t)
  const nodes = [
    await BenchProcess.start('./servers/minimal-router.ts', { REDIS_ADDR: redis.addr, BENCH_NODE_ID: 'a' }),
    await BenchProcess.start('./servers/minimal-router.ts', { REDIS_ADDR: redis.addr, BENCH_NODE_ID: 'b' })
  ]
  const receivers = await BenchProcess.start('./clients/ws-clients.ts')
  const publishers = await BenchProcess.start('./clients/ws-clients.ts')
  t.after(async () => { await Promise.all([receivers, publishers, ...nodes].map(async (p) => p.stop())) })
  const [a, b] = (await Promise.all(nodes.map(async (node) => node.call<number>('listen')))).map((port) => `ws://127.0.0.1:${port}/ws`)
  await receivers.call('open', { base: b, count: 10, concurrency: 10, userPrefix: 'b-', sampleEvery: 1 })
  await publishers.call('openPublishers', { bases: [a], userPrefix: 'sender-' })
  // Each node has heard where the 10 receivers and the sender are.
  await Promise.all(nodes.map(async (node) => node.call('knowsUsers', { count: 11, timeoutMs: 10_000 })))

  await receivers.call('arm', { total: 200 })
  const users = Array.from({ length: 10 }, (_, i) => `b-${i}`)
  const sent = await publishers.call<{ sent: number }>('publish', { targets: [users], count: 200, ratePerSecond: 0, inFlight: 16, size: 64 })
  const result = await receivers.call<{ received: number, samples: number, unarmed: number }>('wait', { timeoutMs: 10_000 })
  assert.deepEqual([sent.sent, result.received, result.samples, result.unarmed], [200, 200, 200, 0])
  await assert.rejects(publishers.call('publish', { targets: [['nobody']], count: 1, ratePerSecond: 0, inFlight: 1, size: 8 }), /NOT_FOUND/)
})
