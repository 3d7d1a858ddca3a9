/**
 * Drain time for 1,000 connections: starts dist/example/server.js, connects the clients, sends
 * SIGTERM and times, from the signal, the first and last close the clients see and the process exit.
 * Runs with no connections (the fixed cost of a shutdown, the baseline), with drain.window 0 (every
 * client told at once: the cost of the drain itself) and with the default window (10 s).
 * With --redis, the server routes over a redis-server the bench starts (and stops) on a free port: each
 * close then also removes a presence entry, and the drain ends by deregistering the node.
 *
 *   npm run build && npx tsx bench/drain.ts [connections] [--redis]
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { TestClient, within } from '../test/helper.js'
import { freePort, spawnRedis } from '../test/redis-harness.js'
import { startServer } from '../test/server-process.js'

const args = process.argv.slice(2)
const withRedis = args.includes('--redis')
const connections = Number(args.find((arg) => !arg.startsWith('--')) ?? 1000)
const server = new URL('../dist/example/server.js', import.meta.url).pathname
if (!existsSync(server)) throw new Error('run `npm run build` first')

let redisEnv: Record<string, string> = {}
let stopRedis = (): void => {}
/** With --redis: what the drained node left in Redis (nothing, if it deregistered). */
let leftInRedis = async (): Promise<string> => '-'
if (withRedis) {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'wsc-bench-redis-'))
  const redis = await spawnRedis(port, dir, [])
  redisEnv = { REDIS_ADDR: `127.0.0.1:${port}`, POD_NAME: 'bench-drain' }
  const client = new Redis({ port })
  leftInRedis = async () => {
    const keys = await client.keys('wsc:*')
    return keys.length === 0 ? 'nothing' : `${keys.length} keys`
  }
  stopRedis = () => {
    client.disconnect()
    redis.kill('SIGTERM')
    rmSync(dir, { recursive: true, force: true })
  }
}

interface Run {
  label: string
  connectMs: number
  firstCloseMs: number | null
  lastCloseMs: number | null
  exitMs: number
  /** The server's own clock: from its 'draining' log line to its 'drained' one. */
  serverDrainMs: number | null
  codes: string
  /** With --redis: the keys the node left behind after it exited. */
  left: string
}

async function run (label: string, count: number, env: Record<string, string>): Promise<Run> {
  const cleanups: Array<() => void> = []
  try {
    const child = await startServer({ after: (fn) => cleanups.push(fn) }, [server], { ...redisEnv, ...env })
    const connectStart = performance.now()
    const clients: TestClient[] = []
    for (let start = 0; start < count; start += 100) {
      clients.push(...await Promise.all(Array.from({ length: Math.min(100, count - start) }, (_, i) => TestClient.connect(child.wsUrl(`token=u${start + i}`)))))
    }
    const connectMs = performance.now() - connectStart
    const closedAt: number[] = []
    for (const client of clients) client.socket.on('close', () => closedAt.push(performance.now()))
    const signalAt = performance.now()
    child.child.kill('SIGTERM')
    const exit = await within(child.exited, 60_000, 'exit')
    const exitMs = performance.now() - signalAt
    const closes = await within(Promise.all(clients.map((client) => client.closed)), 10_000, 'closes')
    const codes = [...new Set(closes.map((close) => close.code))].join(',')
    if (exit.code !== 0) throw new Error(`${label}: exit code ${String(exit.code)}`)
    const logTime = (prefix: string): number | undefined => child.logs.find((line) => String(line.msg).startsWith(prefix))?.time as number | undefined
    const draining = logTime('draining:')
    const drained = logTime('drained:')
    return {
      label,
      connectMs,
      firstCloseMs: closedAt.length === 0 ? null : Math.min(...closedAt) - signalAt,
      lastCloseMs: closedAt.length === 0 ? null : Math.max(...closedAt) - signalAt,
      exitMs,
      serverDrainMs: draining === undefined || drained === undefined ? null : drained - draining,
      codes,
      left: await leftInRedis()
    }
  } finally {
    for (const cleanup of cleanups) cleanup()
  }
}

const ms = (value: number | null): string => value === null ? '-' : `${Math.round(value)} ms`
let baseline: Run, atOnce: Run, spread: Run
try {
  baseline = await run('no connections (baseline)', 0, {})
  atOnce = await run(`${connections} connections, drain.window 0`, connections, { WSC_DRAIN_WINDOW: '0', WSC_RECONNECT_JITTER: '0' })
  spread = await run(`${connections} connections, drain.window 10 s (default)`, connections, {})
} finally {
  stopRedis()
}

console.log(`node ${process.version}, ${connections} connections, example server in a child process, ${withRedis ? 'Redis (a redis-server of its own)' : 'embedded default (no Redis)'}`)
console.log('run | connect all | SIGTERM to first close | to last close | to exit | server drain | close codes | left in Redis')
for (const r of [baseline, atOnce, spread]) {
  console.log(`${r.label} | ${ms(r.connectMs)} | ${ms(r.firstCloseMs)} | ${ms(r.lastCloseMs)} | ${ms(r.exitMs)} | ${ms(r.serverDrainMs)} | ${r.codes || '-'} | ${r.left}`)
}
console.log(`drain cost with window 0: ${ms(atOnce.exitMs - baseline.exitMs)} over the baseline exit (${(atOnce.exitMs / baseline.exitMs).toFixed(1)}x)`)
console.log(`default window: exit ${ms(spread.exitMs)}, ${ms(spread.exitMs - 10_000)} beyond the 10 s window; last close ${ms(spread.lastCloseMs)}`)
