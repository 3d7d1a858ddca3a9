// `npm run bench [-- --quick]`: every scenario side by side with its baseline, measured in one run.
// Prints a markdown table and writes bench/results/latest.json.
import { execSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus } from 'node:os'
import { BenchProcess } from './harness.js'

const quick = process.argv.includes('--quick')
const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length).split(',')

export interface Row {
  scenario: string
  metric: string
  ours: number
  baseline: number
  baselineName: string
  /** Higher is better for throughput; lower for latency and memory. */
  better: 'higher' | 'lower'
  unit: string
}

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

interface ExpectResult { received: number, ms: number, p50: number, p99: number, samples: number }

/** One server, `connections` clients in a room, `messages` fan-outs of `size` bytes. */
async function measureFanout (serverFile: string, connections: number, messages: number, size: number): Promise<{ perSecond: number, p99: number }> {
  return withProcesses([[serverFile], ['./clients/ws-clients.ts']], async ([server, clients]) => {
    const port = await server!.call<number>('listen')
    await clients!.call('open', { base: `ws://127.0.0.1:${port}/ws`, count: connections, concurrency: 50, userPrefix: 'u', room: 'bench', sampleEvery: 50 })
    // Warm-up, then the measured run.
    const warm = clients!.call<ExpectResult>('expect', { total: connections * 200 })
    await server!.call('fanout', { room: 'bench', count: 200, size })
    await warm
    const expected = clients!.call<ExpectResult>('expect', { total: connections * messages })
    await server!.call('fanout', { room: 'bench', count: messages, size })
    const result = await expected
    if (result.received < connections * messages) throw new Error(`fan-out lost frames: ${result.received} of ${connections * messages}`)
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
    const name = `idle memory (${connections} conns)`
    return [
      { scenario: name, metric: 'RSS per connection', ours: ours.rssPerConn / 1024, baseline: base.rssPerConn / 1024, baselineName: 'bare ws', better: 'lower', unit: 'KiB' },
      { scenario: name, metric: 'heap per connection', ours: ours.heapPerConn / 1024, baseline: base.heapPerConn / 1024, baselineName: 'bare ws', better: 'lower', unit: 'KiB' }
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

export const scenarios: Scenario[] = [fanout, idleMemory, connectionSetup]

function format (value: number): string {
  if (!Number.isFinite(value)) return String(value)
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(2)
}

async function main (): Promise<void> {
  const rows: Row[] = []
  const started = Date.now()
  for (const scenario of scenarios) {
    if (only !== undefined && !only.some((name) => scenario.name.includes(name))) continue
    process.stderr.write(`running ${scenario.name}...\n`)
    rows.push(...await scenario.run({ quick }))
  }
  const table = ['| scenario | metric | fastify-wsc | baseline | ratio (ours/baseline) |', '|---|---|---|---|---|']
  for (const row of rows) {
    table.push(`| ${row.scenario} | ${row.metric} (${row.better} is better) | ${format(row.ours)} ${row.unit} | ${format(row.baseline)} ${row.unit} (${row.baselineName}) | ${(row.ours / row.baseline).toFixed(2)}× |`)
  }
  console.log(table.join('\n'))
  let commit = 'unknown'
  try { commit = execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim() } catch {}
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  writeFileSync(new URL('./results/latest.json', import.meta.url), JSON.stringify({
    profile: quick ? 'quick' : 'full',
    node: process.version,
    cores: availableParallelism(),
    cpu: cpus()[0]?.model,
    commit,
    seconds: Math.round((Date.now() - started) / 1000),
    rows: rows.map((row) => ({ ...row, ratio: row.ours / row.baseline }))
  }, null, 2) + '\n')
}

await main()
