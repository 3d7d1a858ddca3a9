import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, chmodSync, constants, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection, createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * A local stand-in for the Kubernetes deployment: one Redis, nodes wsc-0, wsc-1, … of the example app
 * (named through POD_NAME as the StatefulSet names its pods), and nginx in front of them with
 * k8s/nginx/ adapted to loopback. `npm run cluster` (scripts/cluster.ts) and the through-nginx test use it.
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const NGINX_DIR = join(ROOT, 'k8s/nginx')
const SERVER_ENTRY = join(ROOT, 'dist/example/server.js')

/** Why the cluster could not start; `message` says what to do. */
export class ClusterError extends Error {
  override name = 'ClusterError'
}

export interface LocalClusterOptions {
  /** Number of nodes; default 3. */
  nodes?: number
  /** Run a Redis and point the nodes at it (REDIS_ADDR); false runs each node on the embedded default. */
  redis?: boolean
  /** Extra env vars for every node. The nodes also inherit this process's environment. */
  nodeEnv?: NodeJS.ProcessEnv
  /** Path of the nginx binary; default: found on PATH or in /usr/sbin. */
  nginx?: string | undefined
  /** Path of redis-server; default: found on PATH. */
  redisServer?: string | undefined
  /** How long every process may take to answer; default 30 s. */
  startTimeoutMs?: number
  /**
   * Each line a node or nginx writes, with its name (wsc-0, …, nginx). Redis's own log (start-up banner,
   * the host's overcommit warning) is kept for error messages only.
   */
  onOutput?: (name: string, line: string) => void
}

/** A running process of the cluster. */
export interface ClusterProcess {
  name: string
  child: ChildProcess
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  exited: Promise<number | string>
  /** The last lines it wrote, for error messages. */
  tail: () => string
}

export interface LocalNode extends ClusterProcess {
  /** HTTP and WebSocket port (PORT). */
  port: number
  /** Prometheus port (METRICS_PORT). */
  metricsPort: number
}

export interface LocalCluster {
  /** nginx, the way clients come in: http://127.0.0.1:<port> */
  url: string
  /** ws://127.0.0.1:<port>/ws through nginx. */
  wsUrl: string
  nodes: LocalNode[]
  redis: (ClusterProcess & { port: number }) | undefined
  nginx: ClusterProcess & { port: number }
  /** The temp dir holding nginx's generated configuration, pid and logs. */
  dir: string
  /** Stops nginx, the nodes and Redis (SIGTERM, SIGKILL after 10 s) and removes the temp dir. */
  stop: () => Promise<void>
}

/** First executable `name` on PATH or in the extra directories. */
export function findExecutable (name: string, extraDirs: string[] = []): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...extraDirs]) {
    if (dir === '') continue
    const path = join(dir, name)
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {}
  }
  return undefined
}

/** Free TCP ports on 127.0.0.1, distinct from each other. */
export async function freePorts (count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, async () => {
    const server = createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', resolve)
    })
    return server
  }))
  const ports = servers.map((server) => (server.address() as AddressInfo).port)
  await Promise.all(servers.map(async (server) => new Promise((resolve) => server.close(resolve))))
  return ports
}

const BLOCK = /^(?:(map|upstream)\s+[^{]*\{[^}]*\}|log_format\s[^;]*;)/gm

/**
 * Writes an nginx configuration for loopback into `dir`: the maps, log format and upstreams of
 * k8s/nginx/conf.d/wsc.conf with their servers replaced by the local nodes and `ip_hash` by
 * `least_conn`, a plain-HTTP server on 127.0.0.1:`listenPort` logging to `dir`/access.log in that
 * format, and k8s/nginx/snippets/wsc-locations.conf unchanged. Returns nginx.conf's path.
 */
export function writeLoopbackNginxConfig (dir: string, listenPort: number, nodes: Array<{ port: number, metricsPort: number }>): string {
  const site = readFileSync(join(NGINX_DIR, 'conf.d/wsc.conf'), 'utf8')
  const blocks = [...site.matchAll(BLOCK)].map(([block]) => {
    const name = /^upstream\s+(\S+)/.exec(block)?.[1]
    if (name === undefined) return block
    const ports = name === 'wsc_metrics' ? nodes.map((n) => n.metricsPort) : nodes.map((n) => n.port)
    const lines = block.split('\n')
    const first = lines.findIndex((line) => /^\s*server\s/.test(line))
    if (first < 0) throw new Error(`upstream ${name} in k8s/nginx/conf.d/wsc.conf has no server`)
    const [, indent = '    ', params = ''] = /^(\s*)server\s+\S+?((?:\s+[^;]+)?);/.exec(lines[first] ?? '') ?? []
    const servers = ports.map((port) => `${indent}server 127.0.0.1:${port}${params};`)
    return [...lines.slice(0, first).filter((line) => !/^\s*server\s/.test(line)), ...servers, ...lines.slice(first).filter((line) => !/^\s*server\s/.test(line))]
      .join('\n')
      // Every local client comes from 127.0.0.1, so ip_hash would send them all to one node: least_conn
      // spreads a browser's tabs (and any local client) over the nodes, which shows cross-node delivery.
      .replace(/^(\s*)ip_hash;$/m, '$1# ip_hash in k8s/nginx; on loopback every client has the same address.\n$1least_conn;')
  })
  if (!blocks.some((b) => b.startsWith('map')) || !blocks.some((b) => b.includes('upstream wsc_backend')) || !blocks.some((b) => b.startsWith('log_format wsc '))) {
    throw new Error('k8s/nginx/conf.d/wsc.conf lost its map, its log_format wsc or its upstream wsc_backend')
  }
  for (const sub of ['conf.d', 'snippets', 'temp']) mkdirSync(join(dir, sub), { recursive: true })
  copyFileSync(join(NGINX_DIR, 'snippets/wsc-locations.conf'), join(dir, 'snippets/wsc-locations.conf'))
  writeFileSync(join(dir, 'conf.d/wsc.conf'), [
    '# Generated by scripts/local-cluster.ts from k8s/nginx/conf.d/wsc.conf for loopback.',
    ...blocks,
    'server {',
    `    listen 127.0.0.1:${listenPort};`,
    '    server_name localhost;',
    `    access_log ${join(dir, 'access.log')} wsc;`,
    '    include snippets/wsc-locations.conf;',
    '}',
    ''
  ].join('\n\n'))
  const temp = (name: string): string => `    ${name}_temp_path ${join(dir, 'temp', name)};`
  writeFileSync(join(dir, 'nginx.conf'), [
    '# Generated by scripts/local-cluster.ts: nginx in the foreground with everything under this dir.',
    'daemon off;',
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')} warn;`,
    'events {',
    '    worker_connections 1024;',
    '}',
    'http {',
    `    access_log ${join(dir, 'access.log')};`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp),
    '    include conf.d/wsc.conf;',
    '}',
    ''
  ].join('\n'))
  return join(dir, 'nginx.conf')
}

/** Arguments that run nginx on the configuration in `dir` (relative includes resolve there). */
export function nginxArgs (dir: string): string[] {
  return ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]
}

/**
 * Starts a process of the cluster in a process group of its own: a terminal's Ctrl-C (SIGINT to the
 * foreground group) reaches only the script, which then stops each process once, in order.
 */
function start (name: string, command: string, args: string[], env: NodeJS.ProcessEnv, onOutput?: (name: string, line: string) => void): ClusterProcess {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const lines: string[] = []
  const collect = (stream: NodeJS.ReadableStream | null): void => {
    let partial = ''
    stream?.setEncoding('utf8')
    stream?.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n')
      partial = parts.pop() ?? ''
      for (const line of parts) {
        lines.push(line)
        if (lines.length > 20) lines.shift()
        onOutput?.(name, line)
      }
    })
  }
  collect(child.stdout)
  collect(child.stderr)
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'))
    child.once('error', (err) => {
      lines.push(err.message)
      resolve('spawn error')
    })
  })
  return { name, child, exited, tail: () => lines.join('\n') }
}

async function stopProcess (proc: ClusterProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null || proc.child.pid === undefined) return
  proc.child.kill(signal)
  let timer: NodeJS.Timeout | undefined
  const forced = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      proc.child.kill('SIGKILL')
      resolve()
    }, 10_000)
  })
  await Promise.race([proc.exited, forced])
  clearTimeout(timer)
  await proc.exited
}

async function tcpAnswers (port: number, probe?: { send: string, expect: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    let answer = ''
    const done = (ok: boolean): void => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => {
      if (probe === undefined) done(true)
      else socket.write(probe.send)
    })
    socket.on('data', (chunk) => {
      answer += chunk.toString()
      if (probe !== undefined && answer.includes(probe.expect)) done(true)
    })
  })
}

/** GET status of a loopback URL, or 0 when nothing answers. */
async function httpStatus (url: string): Promise<number> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1000) })
    await response.body?.cancel()
    return response.status
  } catch {
    return 0
  }
}

/** Polls `ready` until it is true, failing when `proc` exits first or the deadline passes. */
async function waitUntil (proc: ClusterProcess, what: string, deadline: number, ready: () => Promise<boolean>): Promise<void> {
  let exited: number | string | undefined
  proc.exited.then((code) => { exited = code }, () => {})
  for (;;) {
    if (exited !== undefined) throw new ClusterError(`${proc.name} exited (${exited}) before ${what}:\n${proc.tail()}`)
    if (await ready()) return
    if (Date.now() > deadline) throw new ClusterError(`${proc.name}: no ${what} within the start timeout:\n${proc.tail()}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** A node is ready when /ready answers 200 (a build without /ready: when the server answers at all). */
async function nodeReady (port: number): Promise<boolean> {
  const status = await httpStatus(`http://127.0.0.1:${port}/ready`)
  return status === 200 || status === 404
}

/**
 * Starts Redis (unless `redis: false`), the nodes and nginx, each answering before the next starts;
 * on any failure stops what it started and rejects with a {@link ClusterError} saying why.
 */
export async function startLocalCluster (options: LocalClusterOptions = {}): Promise<LocalCluster> {
  const { nodes: count = 3, redis: withRedis = true, nodeEnv = {}, startTimeoutMs = 30_000, onOutput } = options
  const nginxBin = options.nginx ?? findExecutable('nginx', ['/usr/sbin', '/usr/local/sbin'])
  if (nginxBin === undefined || !existsSync(nginxBin)) {
    throw new ClusterError('nginx is not installed: apt-get install nginx (Debian package nginx)')
  }
  const redisBin = withRedis ? options.redisServer ?? findExecutable('redis-server', ['/usr/sbin', '/usr/local/bin']) : undefined
  if (withRedis && (redisBin === undefined || !existsSync(redisBin))) {
    throw new ClusterError('redis-server is not installed: apt-get install redis-server')
  }
  if (!existsSync(SERVER_ENTRY)) throw new ClusterError('dist/example/server.js is missing: run npm run compile (npm run cluster does)')

  const dir = mkdtempSync(join(tmpdir(), 'wsc-cluster-'))
  // nginx workers run as nobody when the master is root; they need to reach their temp paths here.
  chmodSync(dir, 0o755)
  const started: ClusterProcess[] = []
  // The processes have their own process groups: should this one exit without stop(), take them along.
  const killAll = (): void => { for (const proc of started) if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL') }
  process.once('exit', killAll)
  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopping ??= (async () => {
      // nginx first (no new connections), then every node at once (each drains), then Redis.
      const byName = (name: string): ClusterProcess[] => started.filter((proc) => proc.name === name)
      for (const proc of byName('nginx')) await stopProcess(proc)
      await Promise.all(started.filter((proc) => proc.name !== 'nginx' && proc.name !== 'redis').map(async (proc) => stopProcess(proc)))
      for (const proc of byName('redis')) await stopProcess(proc)
      process.removeListener('exit', killAll)
      rmSync(dir, { recursive: true, force: true })
    })()
    return stopping
  }
  try {
    const ports = await freePorts(2 + 2 * count)
    const deadline = Date.now() + startTimeoutMs
    const take = (): number => ports.shift() as number

    let redis: LocalCluster['redis']
    if (redisBin !== undefined) {
      const port = take()
      const proc = start('redis', redisBin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], process.env)
      started.push(proc)
      redis = { ...proc, port }
      await waitUntil(proc, 'PONG', deadline, async () => tcpAnswers(port, { send: 'PING\r\n', expect: '+PONG' }))
    } else {
      take()
    }

    const nodes: LocalNode[] = []
    for (let i = 0; i < count; i++) {
      const [port, metricsPort] = [take(), take()]
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
        // Ctrl-C drains every node at once: 2 s instead of 10 s, unless the environment says otherwise.
        WSC_DRAIN_WINDOW: process.env.WSC_DRAIN_WINDOW ?? '2s',
        ...nodeEnv,
        POD_NAME: `wsc-${i}`,
        HOST: '127.0.0.1',
        PORT: String(port),
        METRICS_PORT: String(metricsPort),
        WSC_NODE_IP: '127.0.0.1'
      }
      if (redis !== undefined) env.REDIS_ADDR = `127.0.0.1:${redis.port}`
      else delete env.REDIS_ADDR
      const proc = start(`wsc-${i}`, process.execPath, [SERVER_ENTRY], env, onOutput)
      started.push(proc)
      nodes.push({ ...proc, port, metricsPort })
    }
    await Promise.all(nodes.map(async (node) => waitUntil(node, 'readiness (/ready)', deadline, async () => nodeReady(node.port))))

    const nginxPort = take()
    writeLoopbackNginxConfig(dir, nginxPort, nodes)
    const proc = start('nginx', nginxBin, nginxArgs(dir), process.env, onOutput)
    started.push(proc)
    const nginx = { ...proc, port: nginxPort }
    await waitUntil(proc, `a listener on ${nginxPort}`, deadline, async () => tcpAnswers(nginxPort)).catch((err: Error) => {
      const log = existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8').trim() : ''
      throw new ClusterError(`${err.message}${log === '' ? '' : `\n${log}`}`)
    })

    return { url: `http://127.0.0.1:${nginxPort}`, wsUrl: `ws://127.0.0.1:${nginxPort}/ws`, nodes, redis, nginx, dir, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
