/**
 * The built example server (dist/example/server.js) as a pod of a test cluster: its own child process,
 * configured only through the environment a Deployment would set (POD_NAME, REDIS_ADDR, MYSQL_URL…),
 * killed with real signals. Also the HTTP calls the process tests make against it.
 */
import { existsSync } from 'node:fs'
import { TestClient, waitFor } from './helper.js'
import { startServer, type ServerProcess } from './server-process.js'

export const exampleServer = new URL('../dist/example/server.js', import.meta.url).pathname

export function requireBuild (): void {
  if (!existsSync(exampleServer)) throw new Error('dist/example/server.js is missing: run `npm run build` before the process tests')
}

export interface ExampleNodeOptions {
  /** POD_NAME: the node id. */
  nodeId: string
  /** REDIS_ADDR. */
  redisAddr: string
  /** WSC_REDIS_PREFIX; default `wsc:` (fine on a redis-server the test owns). */
  prefix?: string
  /** MYSQL_URL; unset: Redis inbox only. */
  mysqlUrl?: string
  /** More environment (WSC_DRAIN_WINDOW…). */
  env?: Record<string, string>
}

export interface ExampleNode extends ServerProcess {
  nodeId: string
}

/** Heartbeat of the test clusters: peers reap a killed node within 3 of them. */
export const TEST_HEARTBEAT = '500ms'

/** Starts the example server as one node and waits for its `/ready` to answer 200. */
export async function startExampleNode (t: { after: (fn: () => void) => void }, options: ExampleNodeOptions): Promise<ExampleNode> {
  requireBuild()
  const server = await startServer(t, [exampleServer], {
    POD_NAME: options.nodeId,
    REDIS_ADDR: options.redisAddr,
    WSC_REDIS_PREFIX: options.prefix ?? 'wsc:',
    WSC_NODE_HEARTBEAT_INTERVAL: TEST_HEARTBEAT,
    WSC_NODE_DISCOVERY_INTERVAL: '1s',
    ...(options.mysqlUrl === undefined ? {} : { MYSQL_URL: options.mysqlUrl }),
    ...options.env
  })
  await waitFor(async () => (await readiness(server)).status === 200 ? true : undefined, 15_000, `${options.nodeId}: /ready to answer 200`)
  return Object.assign(server, { nodeId: options.nodeId })
}

export interface ReadinessAnswer {
  status: number
  body: { status: string, nodeId: string, checks: Array<{ name: string, state: string, latencyMs: number | null, detail: string }> }
}

export async function readiness (server: ServerProcess): Promise<ReadinessAnswer> {
  const response = await fetch(`${server.baseUrl}/ready`)
  return { status: response.status, body: await response.json() as ReadinessAnswer['body'] }
}

/** What `POST /api/send` answered: the message's id and seq, or the refusal. */
export type SendOutcome = { ok: true, id: string, seq: number } | { ok: false, status: number, code: string }

/** `POST /api/send` to a user; a refused or failed request is an outcome, never a throw. */
export async function sendToUser (server: ServerProcess, user: string, data: unknown): Promise<SendOutcome> {
  try {
    const response = await fetch(`${server.baseUrl}/api/send`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: { user }, data })
    })
    const body = await response.json() as { id?: string, seq?: number, code?: string }
    if (response.status === 200 && typeof body.id === 'string' && typeof body.seq === 'number') return { ok: true, id: body.id, seq: body.seq }
    return { ok: false, status: response.status, code: body.code ?? '' }
  } catch (err) {
    return { ok: false, status: 0, code: (err as Error).message }
  }
}

/**
 * One device of a user, as a client that follows the protocol: it remembers the highest `seq` it
 * received and, when its connection ends, connects again (to any node) with `since=<that seq>`.
 */
export class Device {
  readonly user: string
  /** Every user message frame received, duplicates included, in arrival order. */
  readonly received: Array<{ seq: number, id: string }> = []
  lastSeq = 0
  /** Frames that arrived with a seq below one already received. */
  outOfOrder = 0
  client: TestClient | undefined

  constructor (user: string) {
    this.user = user
  }

  /** Connects to a node given as its `/ws` URL builder (`ServerProcess.wsUrl`, `TestNode.url`). */
  async connect (wsUrl: (query: string) => string): Promise<TestClient> {
    const client = new TestClient(wsUrl(`token=${encodeURIComponent(this.user)}${this.lastSeq > 0 ? `&since=${this.lastSeq}` : ''}`))
    client.socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as { type: string, seq?: number, id?: string }
      if (frame.type !== 'message' || typeof frame.seq !== 'number') return
      if (frame.seq < this.lastSeq) this.outOfOrder++
      this.received.push({ seq: frame.seq, id: String(frame.id) })
      this.lastSeq = Math.max(this.lastSeq, frame.seq)
    })
    client.welcome = await client.next('welcome')
    this.client = client
    return client
  }

  /** Seqs received at least once. */
  seqs (): Set<number> {
    return new Set(this.received.map((frame) => frame.seq))
  }
}
