/**
 * Redis test harness: throwaway redis-server processes and 3-master clusters (with replicas if asked) on
 * free loopback ports, N fastify-wsc nodes on one Redis under a prefix of their own, child-process
 * nodes for crash tests.
 * Tests write only under their own prefix on the shared Redis (127.0.0.1:6379) and delete it after.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { promisify } from 'node:util'
import { Cluster, Redis } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import type { RedisRouter } from '../lib/redis/router.js'
import { clusterSlot } from '../lib/redis/shard-subscriptions.js'
import type { WscOptions } from '../plugins/index.js'
import { build, directMessages, waitFor } from './helper.js'

const run = promisify(execFile)

/** The Redis every developer machine and CI run has. */
export const SHARED_REDIS = process.env.WSC_TEST_REDIS ?? '127.0.0.1:6379'

/** A key prefix no other test uses. */
export function uniquePrefix (): string {
  return `wsc-test-${randomBytes(4).toString('hex')}:`
}

export async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

function hostPort (addr: string): { host: string, port: number } {
  const [host = '127.0.0.1', port = '6379'] = addr.split(':')
  return { host, port: Number(port) }
}

/** A plain client for assertions on the shared Redis or a throwaway one; closed in `t.after`. */
export function redisClient (t: TestContext, addr: string = SHARED_REDIS): Redis {
  const client = new Redis({ ...hostPort(addr), maxRetriesPerRequest: 1, lazyConnect: false })
  client.on('error', () => {})
  t.after(() => { client.disconnect() })
  return client
}

/** A cluster client for assertions; closed in `t.after`. */
export function clusterClient (t: TestContext, seeds: string[]): Cluster {
  const client = new Cluster(seeds.map(hostPort))
  client.on('error', () => {})
  t.after(() => { client.disconnect() })
  return client
}

/** Deletes every key under `prefix` (SCAN, never KEYS or FLUSH) through `client`. */
export async function deleteKeysWithPrefix (client: Redis, prefix: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await client.del(...keys)
  } while (cursor !== '0')
}

export async function deletePrefix (addr: string, prefix: string): Promise<void> {
  const client = new Redis({ ...hostPort(addr), maxRetriesPerRequest: 1 })
  client.on('error', () => {})
  try {
    await deleteKeysWithPrefix(client, prefix)
  } finally {
    client.disconnect()
  }
}

/** A redis-server process this test owns. */
export interface RedisServer {
  port: number
  addr: string
  /** Stops the server (SIGTERM, no save) and waits for it to exit. */
  stop (): Promise<void>
  /** Starts it again on the same port with an empty dataset. */
  start (): Promise<void>
  /** Freezes the process (SIGSTOP): connections stay open, nothing answers. */
  pause (): void
  /** Lets a paused process run again (SIGCONT). */
  resume (): void
}

/** Spawns `redis-server` on `port` with no persistence; resolves once it accepts connections. */
export async function spawnRedis (port: number, dir: string, extra: string[]): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] })
  await new Promise<void>((resolve, reject) => {
    let output = ''
    const timer = setTimeout(() => reject(new Error(`redis-server on ${port} did not start: ${output}`)), 10_000)
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`redis-server on ${port} exited with ${code}: ${output}`))
    })
  })
  child.stdout?.resume()
  child.stderr?.resume()
  return child
}

async function stopProcess (child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  // A paused (SIGSTOP) process handles SIGTERM only once it runs again.
  if (signal !== 'SIGKILL') child.kill('SIGCONT')
  child.kill(signal)
  await exited
}

/** Starts `redis-server` on a free port; stopped and its directory removed in `t.after`. */
export async function startRedisServer (t: TestContext, extra: string[] = []): Promise<RedisServer> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'wsc-redis-'))
  let child: ChildProcess | undefined = await spawnRedis(port, dir, extra)
  t.after(async () => {
    await stopProcess(child)
    rmSync(dir, { recursive: true, force: true })
  })
  return {
    port,
    addr: `127.0.0.1:${port}`,
    stop: async () => {
      await stopProcess(child)
      child = undefined
    },
    start: async () => {
      child = await spawnRedis(port, dir, extra)
    },
    pause: () => { child?.kill('SIGSTOP') },
    resume: () => { child?.kill('SIGCONT') }
  }
}

/** One redis-server of a test cluster. */
export interface ClusterProcess {
  port: number
  addr: string
  /** Sends `signal` (SIGKILL: a crash) and waits for the process to exit. */
  kill (signal?: NodeJS.Signals): Promise<void>
  /** Starts it again on the same port and cluster configuration (its data is gone: no persistence). */
  start (): Promise<void>
  /** Freezes the process (SIGSTOP): connections stay open, nothing answers. */
  pause (): void
  /** Lets a paused process run again (SIGCONT). */
  resume (): void
}

/** A Redis Cluster of 3 masters (and their replicas) this test owns. */
export interface RedisClusterHandle {
  seeds: string[]
  /** Master address → the slot ranges it serves, when the cluster was created. */
  masters: Array<{ addr: string, ranges: Array<[number, number]> }>
  /** Every redis-server, masters and replicas, by address. */
  processes: Map<string, ClusterProcess>
  /** Master address → its replicas' addresses, when the cluster was created. */
  replicas: Map<string, string[]>
  /** The current master of `slot`, as the survivors report it (CLUSTER SLOTS). */
  masterOf (slot: number): Promise<string>
  /** The master that served the slot of `key` (a key or a sharded channel) when the cluster was created. */
  initialMasterOf (key: string): string
}

export interface RedisClusterOptions {
  /** Replicas per master (each can take over when its master dies); default 0. */
  replicas?: number
  /** `cluster-node-timeout` in ms: how long a master is unreachable before a failover; default 3000. */
  nodeTimeout?: number
}

async function redisCli (port: number, ...args: string[]): Promise<string> {
  return (await run('redis-cli', ['-p', String(port), ...args])).stdout
}

/**
 * Creates a Redis Cluster of 3 masters (each with `replicas` replicas) on free ports and waits until
 * every slot is served and every replica is in sync; stopped and removed in `t.after`.
 */
export async function startRedisCluster (t: TestContext, options: RedisClusterOptions = {}): Promise<RedisClusterHandle> {
  const { replicas = 0, nodeTimeout = 3000 } = options
  const dir = mkdtempSync(join(tmpdir(), 'wsc-cluster-'))
  const children = new Map<number, ChildProcess>()
  t.after(async () => {
    await Promise.all([...children.values()].map((child) => stopProcess(child)))
    rmSync(dir, { recursive: true, force: true })
  })
  const ports: number[] = []
  while (ports.length < 3 * (1 + replicas)) {
    const port = await freePort()
    // The cluster bus listens on port + 10000.
    if (!ports.includes(port) && !ports.includes(port + 10000) && !ports.includes(port - 10000) && port + 10000 <= 65535) ports.push(port)
  }
  const spawnNode = async (port: number): Promise<void> => {
    children.set(port, await spawnRedis(port, dir, [
      '--cluster-enabled', 'yes',
      '--cluster-config-file', `nodes-${port}.conf`,
      '--cluster-node-timeout', String(nodeTimeout)
    ]))
  }
  await Promise.all(ports.map(spawnNode))
  const seeds = ports.map((port) => `127.0.0.1:${port}`)
  await run('redis-cli', ['--cluster', 'create', ...seeds, '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: 30_000 })
  await waitFor(async () => {
    for (const port of ports) {
      if (!(await redisCli(port, 'cluster', 'info')).includes('cluster_state:ok')) return false
      const replication = await redisCli(port, 'info', 'replication')
      if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) return false
    }
    return true
  }, 30_000, 'cluster_state:ok on every node and every replica in sync', 100)

  const slotsFrom = async (port: number): Promise<Array<[number, number, string]>> => {
    const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    probe.on('error', () => {})
    try {
      await probe.connect()
      const slots = await probe.cluster('SLOTS')
      return slots.map(([start, end, [host, port] = ['', 0]]) => [start, end, `${host}:${port}`])
    } finally {
      probe.disconnect()
    }
  }
  const masters = new Map<string, Array<[number, number]>>()
  for (const [start, end, master] of await slotsFrom(ports[0] as number)) masters.set(master, [...masters.get(master) ?? [], [start, end]])
  const replicaMap = new Map<string, string[]>([...masters.keys()].map((master) => [master, []]))
  for (const port of ports) {
    const master = /master_port:(\d+)/.exec(await redisCli(port, 'info', 'replication'))?.[1]
    if (master !== undefined) replicaMap.get(`127.0.0.1:${master}`)?.push(`127.0.0.1:${port}`)
  }
  const processes = new Map<string, ClusterProcess>()
  for (const port of ports) {
    const addr = `127.0.0.1:${port}`
    processes.set(addr, {
      port,
      addr,
      kill: async (signal = 'SIGKILL') => { await stopProcess(children.get(port), signal) },
      start: async () => { await spawnNode(port) },
      pause: () => { children.get(port)?.kill('SIGSTOP') },
      resume: () => { children.get(port)?.kill('SIGCONT') }
    })
  }
  const alive = (): number[] => ports.filter((port) => {
    const child = children.get(port)
    return child !== undefined && child.exitCode === null && child.signalCode === null
  })
  return {
    seeds,
    masters: [...masters].map(([addr, ranges]) => ({ addr, ranges })),
    processes,
    replicas: replicaMap,
    initialMasterOf: (key) => {
      const slot = clusterSlot(key)
      return [...masters].find(([, ranges]) => ranges.some(([start, end]) => slot >= start && slot <= end))?.[0] as string
    },
    masterOf: async (slot) => {
      for (const port of alive()) {
        try {
          const range = (await slotsFrom(port)).find(([start, end]) => slot >= start && slot <= end)
          if (range !== undefined) return range[2]
        } catch {}
      }
      throw new Error(`no live node of the cluster serves slot ${slot}`)
    }
  }
}

/** One fastify-wsc node of a test cluster. */
export interface TestNode {
  nodeId: string
  app: FastifyInstance
  router: RedisRouter
  url: (query?: string) => string
}

export interface NodesOptions {
  prefix: string
  /** Standalone address; default the shared Redis. */
  addr?: string
  /** Cluster seed nodes (Cluster mode). */
  clusterNodes?: string[]
  heartbeatMs?: number
  extra?: WscOptions
}

/**
 * Starts `count` nodes (`<prefix>n0`, …) in this process, each its own Fastify app on a loopback port,
 * all on one Redis under `prefix`. Apps close in `t.after`; keys under the prefix are deleted after them.
 */
export async function startNodes (t: TestContext, count: number, options: NodesOptions): Promise<TestNode[]> {
  const heartbeat = options.heartbeatMs ?? 500
  const redis = options.clusterNodes !== undefined
    ? { clusterNodes: options.clusterNodes, prefix: options.prefix }
    : { addr: options.addr ?? SHARED_REDIS, prefix: options.prefix }
  if (options.clusterNodes === undefined && (options.addr === undefined || options.addr === SHARED_REDIS)) {
    t.after(() => deletePrefix(SHARED_REDIS, options.prefix))
  }
  const nodes: TestNode[] = []
  for (let i = 0; i < count; i++) {
    const nodeId = `${options.prefix.replace(/:$/, '')}-n${i}`
    const { app, url } = await build(t, {
      server: { nodeId },
      redis,
      distributed: { heartbeatInterval: heartbeat, nodeDiscoveryInterval: heartbeat * 2 },
      // The scenarios are about routing: clients may send direct messages.
      authorizePublish: directMessages,
      ...options.extra
    })
    nodes.push({ nodeId, app, router: app.wscRouter as RedisRouter, url })
  }
  return nodes
}

/** A node running in a child process (`test/redis-node-process.ts`), for crashes and real signals. */
export interface NodeProcess {
  nodeId: string
  port: number
  url: (query?: string) => string
  child: ChildProcess
  /** Sends a signal and waits for the process to exit. */
  kill (signal: NodeJS.Signals): Promise<void>
}

export async function startNodeProcess (t: TestContext, options: { nodeId: string, prefix: string, addr?: string, heartbeatMs: number }): Promise<NodeProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'redis-node-process.ts')], {
    env: {
      ...process.env,
      NODE_ID: options.nodeId,
      REDIS_ADDR: options.addr ?? SHARED_REDIS,
      WSC_REDIS_PREFIX: options.prefix,
      WSC_NODE_HEARTBEAT_INTERVAL: String(options.heartbeatMs),
      WSC_NODE_DISCOVERY_INTERVAL: String(options.heartbeatMs * 2)
    },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.after(() => stopProcess(child, 'SIGKILL'))
  const port = await new Promise<number>((resolve, reject) => {
    let output = ''
    const timer = setTimeout(() => reject(new Error(`node process ${options.nodeId} did not start: ${output}`)), 20_000)
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const match = /listening (\d+)/.exec(output)
      if (match !== null) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`node process ${options.nodeId} exited with ${code}: ${output}`))
    })
  })
  child.stdout?.resume()
  return {
    nodeId: options.nodeId,
    port,
    child,
    url: (query = '') => `ws://127.0.0.1:${port}/ws${query === '' ? '' : `?${query}`}`,
    kill: (signal) => stopProcess(child, signal)
  }
}
