// The cross-node scenario: users spread over 3 (then 6) nodes on one Redis of the bench's own, every
// message addressed to a user on another node. fastify-wsc beside the minimal ws + Redis router and
// Socket.IO + redis-adapter, each on the same topology with the same load, one after the other.
import { appendFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { now, type BenchProcess } from './harness.js'
import type { Row } from './results.js'
import { counted, withBenchRedis, withProcesses, type Scenario } from './scenario.js'

interface System {
  name: string
  server: string
  /** The load generator speaking its protocol (receivers and publishers alike). */
  clients: string
}

const MINIMAL: System = { name: 'minimal ws + Redis router', server: './servers/minimal-router.ts', clients: './clients/ws-clients.ts' }
const SOCKETIO: System = { name: 'Socket.IO + redis-adapter', server: './servers/socketio.ts', clients: './clients/socketio-clients.ts' }
const WSC: System = { name: 'fastify-wsc', server: './servers/wsc.ts', clients: './clients/ws-clients.ts' }
const BASELINES = [MINIMAL, SOCKETIO]

const USERS = 3000
const SIZE = 1024
/** Unacknowledged messages in total, split over the nodes' senders: 128 per node with 3 nodes. */
const IN_FLIGHT = 384
const RATE = 2000

/** Client `publish` frames from one sender connection per node, or the server's own `sendToUser`. */
type Load = 'publish' | 'sendToUser'

interface Run {
  load: Load
  messages: number
  /** Messages per second offered in total; 0: as many as the window of unacknowledged ones allows. */
  ratePerSecond: number
}

interface Figures {
  perSecond: number
  p50: number
  p99: number
  /** CPU time of the redis-server over the run (INFO CPU: used_cpu_sys + used_cpu_user), % of one core. */
  redisCpuPercent: number
  redisCpuMicrosPerMessage: number
}

type Measure = (run: Run, what: string) => Promise<Figures>

/** Microseconds on the monotonic clock V8's CPU profiles use for their sample times. */
const monotonicMicros = (): number => Number(process.hrtime.bigint() / 1000n)

/** With BENCH_CPU_PROF, notes when each run was measured, so profile-summary can look at that run alone. */
function noteProfileWindow (name: string, startUs: number, endUs: number): void {
  const dir = process.env.BENCH_CPU_PROF
  if (dir === undefined) return
  // The profiles themselves are written as the processes exit, after the first run ended.
  mkdirSync(dir, { recursive: true })
  appendFileSync(join(dir, 'windows.jsonl'), JSON.stringify({ name, startUs, endUs }) + '\n')
}

/**
 * With BENCH_ALLOC_PROF and BENCH_ALLOC_RUN=text, starts or stops (SIGUSR2, bench/alloc-sampling.ts) the
 * allocation sampling of every node while a run whose name contains text is measured.
 */
function toggleAllocSampling (name: string, nodes: BenchProcess[]): void {
  const run = process.env.BENCH_ALLOC_RUN
  if (process.env.BENCH_ALLOC_PROF === undefined || run === undefined || !name.includes(run)) return
  for (const node of nodes) node.child.kill('SIGUSR2')
}

interface RedisUsage {
  /** CPU seconds the redis-server has used, system and user, all its threads. */
  cpuSeconds: number
  /** Calls and µs of each command (INFO commandstats). */
  commands: Map<string, { calls: number, usec: number }>
}

async function redisUsage (client: Redis): Promise<RedisUsage> {
  const info = await client.call('INFO', 'cpu', 'commandstats') as string
  const field = (name: string): number => {
    const value = new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1]
    if (value === undefined) throw new Error(`INFO CPU has no ${name}`)
    return Number(value)
  }
  const commands = new Map<string, { calls: number, usec: number }>()
  for (const [, name, calls, usec] of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    if (name !== 'info') commands.set(name as string, { calls: Number(calls), usec: Number(usec) })
  }
  return { cpuSeconds: field('used_cpu_sys') + field('used_cpu_user'), commands }
}

/** What Redis did per message between two readings: each command's calls and µs (wall time), busiest first. */
function commandsPerMessage (before: RedisUsage, after: RedisUsage, messages: number): string {
  return [...after.commands].map(([name, { calls, usec }]) => {
    const was = before.commands.get(name) ?? { calls: 0, usec: 0 }
    return { name, calls: (calls - was.calls) / messages, usec: (usec - was.usec) / messages }
  }).filter((c) => c.calls > 0).sort((a, b) => b.usec - a.usec)
    .map((c) => `${c.name} ${c.calls.toFixed(2)} (${c.usec.toFixed(1)} µs)`).join(', ')
}

/**
 * With BENCH_STALLS=1, a process of its own (bench/stall-detector.ts) notes, during each paced run, every
 * wake-up of a 1 ms timer more than 2 ms late: when every core was busy elsewhere. Set beside the run's
 * slowest 1 % of messages, it shows whether the p99 is the machine's stalls.
 */
const WATCH_STALLS = process.env.BENCH_STALLS === '1'

/** One line for stderr: the run's late wake-ups, and how many of its slowest messages were in flight during one. */
function describeStalls (stalls: Array<[number, number]>, slowest: Array<[number, number]>): string {
  const duringOne = slowest.filter(([sentAt, latency]) => stalls.some(([due, late]) => due < sentAt + latency && due + late > sentAt)).length
  const worst = stalls.reduce((most, [, late]) => Math.max(most, late), 0)
  return `a 1 ms timer in an idle process woke more than 2 ms late ${stalls.length} times (${stalls.filter(([, late]) => late > 5).length} more than 5 ms, at worst ${worst.toFixed(1)} ms); ` +
    `${duringOne} of the ${slowest.length} slowest messages (at or above the p99) were in flight during one`
}

/**
 * `nodes` servers of `system` on one Redis, USERS receiving clients spread evenly over them (one user
 * each) and one publishing connection per node, in a load generator of its own. `body` measures runs.
 */
async function withTopology<T> (system: System, redis: { addr: string, client: Redis }, nodes: number, body: (measure: Measure) => Promise<T>): Promise<T> {
  await redis.client.flushall()
  const servers = Array.from({ length: nodes }, (_, i): [string, Record<string, string>] => [system.server, { REDIS_ADDR: redis.addr, BENCH_NODE_ID: `bench-${i}` }])
  return withProcesses([...servers, [system.clients], [system.clients], ...(WATCH_STALLS ? [['stall-detector.ts'] as [string]] : [])], async (processes) => {
    const nodeProcesses = processes.slice(0, nodes)
    const [receivers, publishers, stallDetector] = processes.slice(nodes) as [typeof processes[0], typeof processes[0], typeof processes[0] | undefined]
    const bases = (await Promise.all(nodeProcesses.map((server) => server.call<number>('listen')))).map((port) => `ws://127.0.0.1:${port}/ws`)
    const perNode = Math.floor(USERS / nodes)
    const usersOn: string[][] = []
    for (const [n, base] of bases.entries()) {
      await receivers.call('open', { base, count: perNode, concurrency: 50, userPrefix: `n${n}-`, sampleEvery: 1 })
      usersOn.push(Array.from({ length: perNode }, (_, i) => `n${n}-${i}`))
    }
    await publishers.call('openPublishers', { bases, userPrefix: 'sender-' })
    // The minimal router learns where users are from announcements: every node must have heard them all.
    if (system === MINIMAL) await Promise.all(nodeProcesses.map(async (server) => server.call('knowsUsers', { count: perNode * nodes + nodes })))
    // Node n's sender (or node n itself) sends to the users of the other nodes only.
    const targets = usersOn.map((_, n) => usersOn.filter((_, m) => m !== n).flat())
    const inFlight = Math.floor(IN_FLIGHT / nodes)
    return body(async ({ load, messages, ratePerSecond }, what) => {
      const total = messages - messages % nodes
      let before: RedisUsage | undefined
      let nodeCpuBefore = 0
      let startedAt = 0
      let startUs = 0
      const name = `${system.name}, ${nodes} nodes, ${what}`
      const detector = ratePerSecond > 0 ? stallDetector : undefined
      const result = await counted(receivers, total, name, async () => {
        await detector?.call('start')
        before = await redisUsage(redis.client)
        nodeCpuBefore = nodeProcesses.reduce((sum, server) => sum + server.cpuSeconds(), 0)
        toggleAllocSampling(name, nodeProcesses)
        startedAt = now()
        startUs = monotonicMicros()
        if (load === 'publish') await publishers.call('publish', { targets, count: total, ratePerSecond, inFlight, size: SIZE })
        else await Promise.all(nodeProcesses.map(async (server, n) => server.call('sendToUsers', { users: targets[n], count: total / nodes, ratePerSecond: ratePerSecond / nodes, inFlight, size: SIZE })))
      }, { slowest: detector !== undefined })
      const stalls = await detector?.call<Array<[number, number]>>('stop')
      const seconds = (now() - startedAt) / 1000
      toggleAllocSampling(name, nodeProcesses)
      noteProfileWindow(name, startUs, monotonicMicros())
      const nodeCpu = nodeProcesses.reduce((sum, server) => sum + server.cpuSeconds(), 0) - nodeCpuBefore
      const after = await redisUsage(redis.client)
      const cpu = after.cpuSeconds - before!.cpuSeconds
      const figures = {
        perSecond: result.received / (result.ms / 1000),
        p50: result.p50,
        p99: result.p99,
        redisCpuPercent: (cpu / seconds) * 100,
        redisCpuMicrosPerMessage: (cpu * 1e6) / result.received
      }
      // Every run, warm-ups too, on stderr: the Redis commands behind the CPU figure show what a change did.
      process.stderr.write(`  ${name}: ${Math.round(figures.perSecond)} msg/s, p50 ${figures.p50.toFixed(2)} ms, p99 ${figures.p99.toFixed(2)} ms; ` +
        `servers ${(nodeCpu * 1e6 / result.received).toFixed(1)} µs CPU per message (all nodes, from /proc); ` +
        `Redis ${figures.redisCpuMicrosPerMessage.toFixed(1)} µs CPU per message, commands per message (those a script runs counted too; a script's µs are its own, without theirs): ${commandsPerMessage(before!, after, result.received)}` +
        `${stalls === undefined ? '' : `; ${describeStalls(stalls, result.slowest ?? [])}`}\n`)
      return figures
    })
  })
}

interface Metric {
  metric: string
  figure: (figures: Figures) => number
  better: Row['better']
  unit: string
}

const DELIVERED: Metric = { metric: 'delivered/s', figure: (f) => f.perSecond, better: 'higher', unit: 'msg/s' }
const P50: Metric = { metric: 'p50 latency', figure: (f) => f.p50, better: 'lower', unit: 'ms' }
const P99: Metric = { metric: 'p99 latency', figure: (f) => f.p99, better: 'lower', unit: 'ms' }
const REDIS_CPU: Metric = { metric: 'Redis CPU', figure: (f) => f.redisCpuPercent, better: 'lower', unit: '% of a core' }
const REDIS_CPU_PER_MESSAGE: Metric = { metric: 'Redis CPU per message', figure: (f) => f.redisCpuMicrosPerMessage, better: 'lower', unit: 'µs' }

/** One row per metric and baseline: fastify-wsc's figure beside the baseline's, from `of(system)`. */
function compare (scenario: string, metrics: Metric[], of: (system: System) => Figures): Row[] {
  return metrics.flatMap((m) => BASELINES.map((baseline) => ({
    scenario, metric: m.metric, ours: m.figure(of(WSC)), baseline: m.figure(of(baseline)), baselineName: baseline.name, better: m.better, unit: m.unit
  })))
}

interface ThreeNodes { publishPaced: Figures, publishSaturated: Figures, sendPaced: Figures, sendSaturated: Figures }

export const crossNode: Scenario = {
  name: 'cross-node',
  run: async ({ quick }) => withBenchRedis(async (redis) => {
    const pacedMessages = quick ? 4000 : 12_000
    const saturatedMessages = quick ? 12_000 : 40_000
    const warmUp = quick ? 1500 : 3000
    const three = new Map<System, ThreeNodes>()
    const six = new Map<System, Figures>()
    for (const system of [MINIMAL, SOCKETIO, WSC]) {
      three.set(system, await withTopology(system, redis, 3, async (measure) => {
        await measure({ load: 'publish', messages: warmUp, ratePerSecond: 0 }, 'publish warm-up')
        await measure({ load: 'sendToUser', messages: warmUp, ratePerSecond: 0 }, 'sendToUser warm-up')
        return {
          publishPaced: await measure({ load: 'publish', messages: pacedMessages, ratePerSecond: RATE }, `publish at ${RATE}/s`),
          publishSaturated: await measure({ load: 'publish', messages: saturatedMessages, ratePerSecond: 0 }, 'publish at saturation'),
          sendPaced: await measure({ load: 'sendToUser', messages: pacedMessages, ratePerSecond: RATE }, `sendToUser at ${RATE}/s`),
          sendSaturated: await measure({ load: 'sendToUser', messages: saturatedMessages, ratePerSecond: 0 }, 'sendToUser at saturation')
        }
      }))
    }
    for (const system of [MINIMAL, SOCKETIO, WSC]) {
      six.set(system, await withTopology(system, redis, 6, async (measure) => {
        await measure({ load: 'publish', messages: warmUp, ratePerSecond: 0 }, 'publish warm-up')
        return measure({ load: 'publish', messages: saturatedMessages, ratePerSecond: 0 }, 'publish at saturation')
      }))
    }
    const of = <K extends keyof ThreeNodes>(key: K) => (system: System): Figures => three.get(system)![key]
    const topology = (nodes: number): string => `${nodes} nodes + Redis, ${USERS} users, 1 KiB`
    const window = (nodes: number): string => `${IN_FLIGHT / nodes} in flight per node`
    const growth = (figure: (f: Figures) => number) => (system: System): number => figure(six.get(system)!) / figure(three.get(system)!.publishSaturated)
    return [
      // At saturation Redis's share of a core follows the throughput, so only its cost per message compares.
      ...compare(`cross-node publish frames (${topology(3)}, at saturation, ${window(3)})`, [DELIVERED, P50, P99, REDIS_CPU_PER_MESSAGE], of('publishSaturated')),
      ...compare(`cross-node publish frames (${topology(3)}, ${RATE}/s offered)`, [P50, P99, REDIS_CPU, REDIS_CPU_PER_MESSAGE], of('publishPaced')),
      ...compare(`cross-node sendToUser (${topology(3)}, at saturation, ${window(3)})`, [DELIVERED, P99, REDIS_CPU_PER_MESSAGE], of('sendSaturated')),
      ...compare(`cross-node sendToUser (${topology(3)}, ${RATE}/s offered)`, [P50, P99, REDIS_CPU], of('sendPaced')),
      ...compare(`cross-node publish frames (${topology(6)}, at saturation, ${window(6)})`, [DELIVERED, P99, REDIS_CPU_PER_MESSAGE], (system) => six.get(system)!),
      ...[DELIVERED, REDIS_CPU_PER_MESSAGE].flatMap((m) => BASELINES.map((baseline): Row => ({
        scenario: 'cross-node publish frames at saturation, 6 nodes ÷ 3 nodes (same total load)',
        metric: `${m.metric}, 6 ÷ 3 nodes`,
        ours: growth(m.figure)(WSC),
        baseline: growth(m.figure)(baseline),
        baselineName: baseline.name,
        better: m.better,
        unit: '×'
      })))
    ]
  })
}
