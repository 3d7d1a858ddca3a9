// `npm run bench [-- --quick]`: every scenario side by side with its baseline, measured in one run.
// Prints a markdown table and writes bench/results/latest.json (ignored by git; see bench/results.ts).
import { execSync } from 'node:child_process'
import { availableParallelism, cpus, loadavg } from 'node:os'
import { relative } from 'node:path'
import { crossNode } from './cross-node.js'
import { LATEST_RESULTS, resultsTable, writeLatestResults, type Row } from './results.js'
import { counted, withBenchDatabase, withProcesses, type Scenario } from './scenario.js'

const quick = process.argv.includes('--quick')
const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length).split(',')

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

const durableSends: Scenario = {
  name: 'durable sends',
  run: async ({ quick }) => {
    return withBenchDatabase(async ({ url }) => {
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
    })
  }
}

export const scenarios: Scenario[] = [fanout, crossNode, idleMemory, durableSends, connectionSetup]

async function main (): Promise<void> {
  const rows: Row[] = []
  const started = Date.now()
  const loadAtStart = loadavg()
  for (const scenario of scenarios) {
    if (only !== undefined && !only.some((name) => scenario.name.includes(name))) continue
    process.stderr.write(`running ${scenario.name}...\n`)
    rows.push(...await scenario.run({ quick }))
  }
  console.log(resultsTable(rows))
  const loadAtEnd = loadavg()
  let commit = 'unknown'
  try { commit = execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim() } catch {}
  writeLatestResults({
    profile: quick ? 'quick' : 'full',
    node: process.version,
    cores: availableParallelism(),
    cpu: cpus()[0]?.model,
    commit,
    seconds: Math.round((Date.now() - started) / 1000),
    loadAverage: { start: loadAtStart, end: loadAtEnd },
    rows: rows.map((row) => ({ ...row, ratio: row.ours / row.baseline }))
  })
  process.stderr.write(`load average ${loadAtStart.map((l) => l.toFixed(2)).join(', ')} at the start, ${loadAtEnd.map((l) => l.toFixed(2)).join(', ')} at the end\n`)
  process.stderr.write(`figures written to ${relative(process.cwd(), LATEST_RESULTS)}\n`)
}

await main()
