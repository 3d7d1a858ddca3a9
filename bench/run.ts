// `npm run bench [-- --quick]`: every scenario side by side with its baseline, measured in one run.
// Prints a markdown table and writes bench/results/latest.json (ignored by git; see bench/results.ts).
import { execSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import mysql from 'mysql2/promise'
import { freePort, spawnRedis } from '../test/redis-harness.js'
import { BenchProcess } from './harness.js'
import { LATEST_RESULTS, resultsTable, writeLatestResults, type Row } from './results.js'

const quick = process.argv.includes('--quick')
const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length).split(',')

export interface Scenario {
  name: string
  run: (profile: { quick: boolean }) => Promise<Row[]>
}

async function withProcesses<T> (files: Array<[string, Record<string, string>?]>, body: (processes: BenchProcess[]) => Promise<T>): Promise<T> {
  const processes: BenchProcess[] = []
  try {
    for (const [file, env] of files) processes.push(await BenchProcess.start(file, env))
    return await body(processes)
  } finally {
    await Promise.all(processes.map((p) => p.stop()))
  }
}

interface CountResult { received: number, ms: number, p50: number, p99: number, samples: number }

/**
 * Counts `total` messages at the load generator around `send`: the count is armed (and acknowledged)
 * before the first send, and awaited after the last. Throws when fewer arrived, warm-ups included.
 */
async function counted (clients: BenchProcess, total: number, what: string, send: () => Promise<unknown>): Promise<CountResult> {
  await clients.call('arm', { total })
  await send()
  const result = await clients.call<CountResult>('wait', {})
  if (result.received < total) throw new Error(`${what}: ${result.received} of ${total} messages arrived`)
  return result
}

/** One server, `connections` clients in a room, `messages` fan-outs of `size` bytes. */
async function measureFanout (serverFile: string, connections: number, messages: number, size: number): Promise<{ perSecond: number, p99: number }> {
  return withProcesses([[serverFile], ['./clients/ws-clients.ts']], async ([server, clients]) => {
    const port = await server!.call<number>('listen')
    await clients!.call('open', { base: `ws://127.0.0.1:${port}/ws`, count: connections, concurrency: 50, userPrefix: 'u', room: 'bench', sampleEvery: 50 })
    // Warm-up, then the measured run.
    await counted(clients!, connections * 200, 'fan-out warm-up', async () => server!.call('fanout', { room: 'bench', count: 200, size }))
    const result = await counted(clients!, connections * messages, 'fan-out', async () => server!.call('fanout', { room: 'bench', count: messages, size }))
    return { perSecond: result.received / (result.ms / 1000), p99: result.p99 }
  })
}

const fanout: Scenario = {
  name: 'local fan-out',
  run: async ({ quick }) => {
    const connections = 1000
    const messages = quick ? 300 : 2000
    const base = await measureFanout('./servers/ws.ts', connections, messages, 1024)
    const ours = await measureFanout('./servers/wsc.ts', connections, messages, 1024)
    return [
      { scenario: `local fan-out (1 node, ${connections} conns, 1 KiB, ${messages} msgs)`, metric: 'delivered/s', ours: ours.perSecond, baseline: base.perSecond, baselineName: 'bare ws', better: 'higher', unit: 'msg/s' },
      { scenario: `local fan-out (1 node, ${connections} conns, 1 KiB, ${messages} msgs)`, metric: 'p99 latency', ours: ours.p99, baseline: base.p99, baselineName: 'bare ws', better: 'lower', unit: 'ms' }
    ]
  }
}

async function measureIdle (serverFile: string, connections: number, clientFile = './clients/ws-clients.ts'): Promise<{ rssPerConn: number, heapPerConn: number }> {
  return withProcesses([[serverFile], [clientFile]], async ([server, clients]) => {
    const port = await server!.call<number>('listen')
    const before = await server!.call<{ rss: number, heapUsed: number }>('memory')
    await clients!.call('open', { base: `ws://127.0.0.1:${port}/ws`, count: connections, concurrency: 100, userPrefix: 'idle', sampleEvery: 1e9 })
    const after = await server!.call<{ rss: number, heapUsed: number, connections: number }>('memory')
    if (after.connections !== connections) throw new Error(`expected ${connections} connections, server has ${after.connections}`)
    return { rssPerConn: (after.rss - before.rss) / connections, heapPerConn: (after.heapUsed - before.heapUsed) / connections }
  })
}

const idleMemory: Scenario = {
  name: 'idle memory',
  run: async ({ quick }) => {
    const connections = quick ? 2000 : 10_000
    const base = await measureIdle('./servers/ws.ts', connections)
    const ours = await measureIdle('./servers/wsc.ts', connections)
    const peer = await measureIdle('./servers/socketio.ts', connections, './clients/socketio-clients.ts')
    const name = `idle memory (${connections} conns, after GC)`
    const kib = 1024
    return [
      { scenario: name, metric: 'RSS per connection', ours: ours.rssPerConn / kib, baseline: base.rssPerConn / kib, baselineName: 'bare ws', better: 'lower', unit: 'KiB' },
      { scenario: name, metric: 'heap per connection', ours: ours.heapPerConn / kib, baseline: base.heapPerConn / kib, baselineName: 'bare ws', better: 'lower', unit: 'KiB' },
      { scenario: name, metric: 'RSS per connection', ours: ours.rssPerConn / kib, baseline: peer.rssPerConn / kib, baselineName: 'Socket.IO', better: 'lower', unit: 'KiB' },
      { scenario: name, metric: 'heap per connection', ours: ours.heapPerConn / kib, baseline: peer.heapPerConn / kib, baselineName: 'Socket.IO', better: 'lower', unit: 'KiB' }
    ]
  }
}

async function measureSetup (serverFile: string, connections: number): Promise<number> {
  return withProcesses([[serverFile], ['./clients/ws-clients.ts']], async ([server, clients]) => {
    const port = await server!.call<number>('listen')
    await clients!.call('open', { base: `ws://127.0.0.1:${port}/ws`, count: 200, concurrency: 50, userPrefix: 'warm', sampleEvery: 1e9 })
    const { ms } = await clients!.call<{ ms: number }>('open', { base: `ws://127.0.0.1:${port}/ws`, count: connections, concurrency: 50, userPrefix: 'c', sampleEvery: 1e9 })
    return connections / (ms / 1000)
  })
}

const connectionSetup: Scenario = {
  name: 'connection setup',
  run: async ({ quick }) => {
    const connections = quick ? 2000 : 5000
    const base = await measureSetup('./servers/ws.ts', connections)
    const ours = await measureSetup('./servers/wsc.ts', connections)
    return [{ scenario: `connection setup (${connections} upgrades, auth, welcome)`, metric: 'upgrades/s', ours, baseline: base, baselineName: 'bare ws', better: 'higher', unit: 'conn/s' }]
  }
}

/** A redis-server of the benchmark's own on a free port (flushed between runs, removed after). */
async function withRedis<T> (body: (addr: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'wsc-bench-redis-'))
  const port = await freePort()
  const child = await spawnRedis(port, dir, [])
  try {
    return await body(`127.0.0.1:${port}`)
  } finally {
    child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}

interface CrossNodeFigures { perSecond: number, p50: number, p99: number }

/**
 * 3 nodes on one Redis, `connections` clients spread evenly over them (one user each); every node sends
 * `messages / 3` messages to random users at `ratePerSecond / 3` (0: as fast as it can).
 */
async function measureCrossNode (kind: 'wsc' | 'socketio', redisAddr: string, connections: number, messages: number, ratePerSecond: number): Promise<CrossNodeFigures> {
  const serverFile = kind === 'wsc' ? './servers/wsc.ts' : './servers/socketio.ts'
  const clientFile = kind === 'wsc' ? './clients/ws-clients.ts' : './clients/socketio-clients.ts'
  execSync(`redis-cli -h ${redisAddr.split(':')[0]} -p ${redisAddr.split(':')[1]} FLUSHALL`)
  const env = (i: number): Record<string, string> => ({ REDIS_ADDR: redisAddr, BENCH_NODE_ID: `bench-${i}` })
  return withProcesses([[serverFile, env(0)], [serverFile, env(1)], [serverFile, env(2)], [clientFile]], async (processes) => {
    const servers = processes.slice(0, 3)
    const clients = processes[3]!
    const ports = await Promise.all(servers.map((server) => server.call<number>('listen')))
    const perNode = Math.floor(connections / 3)
    const users: string[] = []
    for (const [n, port] of ports.entries()) {
      await clients.call('open', { base: `ws://127.0.0.1:${port}/ws`, count: perNode, concurrency: 50, userPrefix: `n${n}-`, sampleEvery: 1 })
      for (let i = 0; i < perNode; i++) users.push(`n${n}-${i}`)
    }
    const run = async (count: number, what: string): Promise<CountResult> => counted(clients, count - count % 3, what, async () => Promise.all(servers.map(async (server) =>
      server.call('sendToUsers', { users, count: Math.floor(count / 3), ratePerSecond: ratePerSecond / 3, size: 256 }))))
    await run(Math.min(3000, messages), `${kind} warm-up`)
    const result = await run(messages, kind)
    return { perSecond: result.received / (result.ms / 1000), p50: result.p50, p99: result.p99 }
  })
}

const crossNode: Scenario = {
  name: 'cross-node',
  run: async ({ quick }) => withRedis(async (redisAddr) => {
    const connections = 3000
    const rate = 3000
    const fixedMessages = quick ? 6000 : 30_000
    const saturationMessages = quick ? 9000 : 60_000
    const rows: Row[] = []
    const fixedPeer = await measureCrossNode('socketio', redisAddr, connections, fixedMessages, rate)
    const fixedOurs = await measureCrossNode('wsc', redisAddr, connections, fixedMessages, rate)
    const fullPeer = await measureCrossNode('socketio', redisAddr, connections, saturationMessages, 0)
    const fullOurs = await measureCrossNode('wsc', redisAddr, connections, saturationMessages, 0)
    const peer = 'Socket.IO + redis-adapter'
    const at = `cross-node (3 nodes + Redis, ${connections} conns, sendToUser`
    rows.push(
      { scenario: `${at} at ${rate}/s)`, metric: 'p50 latency', ours: fixedOurs.p50, baseline: fixedPeer.p50, baselineName: peer, better: 'lower', unit: 'ms' },
      { scenario: `${at} at ${rate}/s)`, metric: 'p99 latency', ours: fixedOurs.p99, baseline: fixedPeer.p99, baselineName: peer, better: 'lower', unit: 'ms' },
      { scenario: `${at} at saturation)`, metric: 'delivered/s', ours: fullOurs.perSecond, baseline: fullPeer.perSecond, baselineName: peer, better: 'higher', unit: 'msg/s' },
      { scenario: `${at} at saturation)`, metric: 'p99 latency', ours: fullOurs.p99, baseline: fullPeer.p99, baselineName: peer, better: 'lower', unit: 'ms' }
    )
    return rows
  })
}

const durableSends: Scenario = {
  name: 'durable sends',
  run: async ({ quick }) => {
    const admin = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root' })
    const database = `wsc_bench_${randomBytes(4).toString('hex')}`
    await admin.query(`CREATE DATABASE \`${database}\``)
    try {
      const url = `mysql://root@127.0.0.1:3306/${database}`
      const count = quick ? 3000 : 20_000
      const args = { count, concurrency: 200, users: 1000 }
      return await withProcesses([['./servers/wsc.ts', { MYSQL_URL: url }]], async ([server]) => {
        await server!.call('listen')
        await server!.call('durableSends', { ...args, count: 500 })
        await server!.call('singleInserts', { ...args, count: 500 })
        const base = await server!.call<{ ms: number, p99: number }>('singleInserts', args)
        const ours = await server!.call<{ ms: number, p99: number }>('durableSends', args)
        const name = `durable sends (MySQL, ${count} sendToUser, 200 in flight)`
        const baselineName = 'one INSERT per message'
        return [
          { scenario: name, metric: 'committed/s', ours: count / (ours.ms / 1000), baseline: count / (base.ms / 1000), baselineName, better: 'higher', unit: 'msg/s' },
          { scenario: name, metric: 'p99 latency', ours: ours.p99, baseline: base.p99, baselineName, better: 'lower', unit: 'ms' }
        ] satisfies Row[]
      })
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS \`${database}\``)
      await admin.end()
    }
  }
}

export const scenarios: Scenario[] = [fanout, crossNode, idleMemory, durableSends, connectionSetup]

async function main (): Promise<void> {
  const rows: Row[] = []
  const started = Date.now()
  for (const scenario of scenarios) {
    if (only !== undefined && !only.some((name) => scenario.name.includes(name))) continue
    process.stderr.write(`running ${scenario.name}...\n`)
    rows.push(...await scenario.run({ quick }))
  }
  console.log(resultsTable(rows))
  let commit = 'unknown'
  try { commit = execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim() } catch {}
  writeLatestResults({
    profile: quick ? 'quick' : 'full',
    node: process.version,
    cores: availableParallelism(),
    cpu: cpus()[0]?.model,
    commit,
    seconds: Math.round((Date.now() - started) / 1000),
    rows: rows.map((row) => ({ ...row, ratio: row.ours / row.baseline }))
  })
  process.stderr.write(`figures written to ${relative(process.cwd(), LATEST_RESULTS)}\n`)
}

await main()
