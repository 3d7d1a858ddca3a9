import type { TestContext } from 'node:test'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import WebSocket from 'ws'
import { upgradeInProcess, type ClientWire } from './in-process-upgrade.js'
import wsc, { type AuthorizePublish, type WscObserver, type WscOptions } from '../plugins/index.js'

/** An `authorizePublish` that lets clients send direct messages (the library default allows joined rooms only). */
export const directMessages: AuthorizePublish = ({ to, rooms }) => 'user' in to || rooms.has(to.room)

/** The test apps' `authenticate`: the `token` query parameter is the user id. */
const tokenIsUserId = (request: { url: string }): { userId: string } | null => {
  const token = new URL(request.url, 'http://x').searchParams.get('token')
  return token === null ? null : { userId: token }
}

async function register (t: TestContext, options: WscOptions, fastify: FastifyServerOptions = { logger: false }): Promise<FastifyInstance> {
  const app = Fastify(fastify)
  await app.register(wsc, {
    server: { nodeId: 'test-node' },
    // Several apps run in one process and beside other suites: never the fixed 8081.
    metrics: { port: 0, host: '127.0.0.1' },
    authenticate: tokenIsUserId,
    ...options
  })
  t.after(() => app.close())
  return app
}

/** Builds the plugin in a Fastify app listening on 127.0.0.1, closed in `t.after`. Tokens are user ids. */
export async function build (t: TestContext, options: WscOptions = {}): Promise<{ app: FastifyInstance, url: (query?: string) => string }> {
  const app = await register(t, options)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return { app, url: (query = '') => `ws://127.0.0.1:${port}/ws${query === '' ? '' : `?${query}`}` }
}

/** An app of the in-process tier: ready, not listening; clients connect over in-memory streams (no port, no TCP). */
export interface InProcessApp {
  app: FastifyInstance
  /** A client whose upgrade is under way (frames are recorded from the first). */
  open: (query?: string, options?: { headers?: Record<string, string> }) => TestClient
  /** A client after its `welcome`. */
  connect: (query?: string, options?: { headers?: Record<string, string> }) => Promise<TestClient>
  /** The HTTP answer to an upgrade the plugin refuses. */
  refusal: (query?: string, headers?: Record<string, string>) => Promise<Refusal>
}

/** Builds the plugin in a ready app that never listens, closed in `t.after`. Tokens are user ids. */
export async function buildInProcess (t: TestContext, options: WscOptions = {}, fastify?: FastifyServerOptions): Promise<InProcessApp> {
  const app = await register(t, { metrics: { enabled: false }, ...options }, fastify)
  await app.ready()
  const path = (query: string): string => `/ws${query === '' ? '' : `?${query}`}`
  /** Each opened client's upgrade: `connect` fails with a refused upgrade's status rather than waiting for a welcome. */
  const upgrades = new WeakMap<TestClient, Promise<unknown>>()
  const open: InProcessApp['open'] = (query = '', { headers = {} } = {}) => {
    let client: TestClient | undefined
    const upgraded = upgradeInProcess(app, path(query), headers, (socket, wire) => {
      client = new TestClient(socket)
      client.wire = wire
    })
    // A test that opens a refused upgrade on purpose reads the close; `connect` reports the refusal.
    upgraded.catch(() => {})
    upgrades.set(client as unknown as TestClient, upgraded)
    return client as unknown as TestClient
  }
  return {
    app,
    open,
    connect: async (query, options) => {
      const client = open(query, options)
      const [, welcome] = await Promise.all([upgrades.get(client), client.next('welcome')])
      client.welcome = welcome
      return client
    },
    refusal: async (query = '', headers = {}) => {
      const response = await app.inject({ method: 'GET', url: path(query), headers: { connection: 'upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers } })
      return { statusCode: response.statusCode, headers: Object.fromEntries(Object.entries(response.headers).map(([name, value]) => [name, typeof value === 'number' ? String(value) : value])), body: response.body }
    }
  }
}

export type Frame = Record<string, unknown> & { type: string }

/** An observer that counts nothing: spread it and override what a test counts. */
export const noopObserver: WscObserver = {
  connectionOpened () {},
  connectionClosed () {},
  frameIn () {},
  messageSent () {},
  messagesOut () {},
  delivered () {},
  dropped () {}
}

export type LogLine = Record<string, unknown> & { level: number, msg: string }

/** A logger stream that keeps every line, parsed: pass `{ logger: { level, stream } }` to Fastify. */
export function capturedLogs (): { lines: LogLine[], stream: Writable } {
  const lines: LogLine[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine)
      callback()
    }
  })
  return { lines, stream }
}

/** A refused upgrade as the client saw it. */
export interface Refusal {
  statusCode: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** Waits for `promise`, failing after `ms` with `what` in the message. */
export async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Polls `condition` until it holds, failing after `ms` with `what` in the message. */
export async function waitFor<T> (condition: () => T | undefined | false | Promise<T | undefined | false>, ms: number, what: string, every = 25): Promise<T> {
  const deadline = Date.now() + ms
  let last: unknown
  for (;;) {
    try {
      const value = await condition()
      if (value !== undefined && value !== false) return value
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last === undefined ? '' : ` (last error: ${(last as Error).message})`}`)
    await new Promise((resolve) => setTimeout(resolve, every))
  }
}

export interface ClientOptions {
  protocols?: string[]
  headers?: Record<string, string>
  /** Source address, e.g. 127.0.N.1, so nginx's ip_hash tells test clients apart. */
  localAddress?: string
}

/** A protocol client over a real `ws` socket that records every frame it receives. */
export class TestClient {
  readonly socket: WebSocket
  readonly frames: Frame[] = []
  readonly closed: Promise<{ code: number, reason: string }>
  #waiters: Array<() => void> = []

  /** The `welcome` frame, once {@link connect} has read it. */
  welcome: Frame | undefined
  /** The in-memory connection of an in-process client (`buildInProcess`), to stop and resume reading. */
  wire: ClientWire | undefined

  /** Opens `url`, or records the frames of a socket made elsewhere (`injectWS`). */
  constructor (url: string | WebSocket, options: ClientOptions = {}) {
    this.socket = typeof url === 'string' ? new WebSocket(url, options.protocols ?? [], { headers: options.headers, localAddress: options.localAddress }) : url
    this.socket.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()) as Frame)
      this.#wake()
    })
    this.closed = new Promise((resolve) => {
      this.socket.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() })
        this.#wake()
      })
    })
    this.socket.on('error', () => {})
  }

  /** Connects and resolves after the `welcome` frame. */
  static async connect (url: string, options: ClientOptions = {}): Promise<TestClient> {
    const client = new TestClient(url, options)
    client.welcome = await client.next('welcome')
    return client
  }

  /** Resolves with the HTTP answer of an upgrade the server refused; rejects if it was accepted. */
  static async refusal (url: string, headers: Record<string, string> = {}): Promise<Refusal> {
    return within(new Promise((resolve, reject) => {
      const socket = new WebSocket(url, { headers })
      socket.on('unexpected-response', (_req, res) => {
        let body = ''
        res.on('data', (chunk: Buffer) => { body += chunk.toString() })
        res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body }))
      })
      socket.on('open', () => {
        socket.close()
        reject(new Error('upgrade was accepted'))
      })
      socket.on('error', () => {})
    }), 5000, 'an upgrade refusal')
  }

  #wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  send (frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** The next unread frame of `type` (frames of other types before it stay unread). */
  async next (type: string, ms = 5000): Promise<Frame> {
    return within((async () => {
      for (;;) {
        for (let i = 0; i < this.frames.length; i++) {
          const frame = this.frames[i] as Frame
          if (frame.type === type) {
            this.frames.splice(i, 1)
            return frame
          }
        }
        if (this.socket.readyState >= WebSocket.CLOSING) throw new Error(`socket closed while waiting for ${type}`)
        await new Promise<void>((resolve) => this.#waiters.push(resolve))
      }
    })(), ms, `a ${type} frame`)
  }

  /** Resolves once `count` unread frames of `type` have arrived (they stay unread). */
  async received (type: string, count: number, ms = 10_000): Promise<void> {
    await within((async () => {
      while (this.frames.reduce((n, frame) => n + (frame.type === type ? 1 : 0), 0) < count) {
        if (this.socket.readyState >= WebSocket.CLOSING) throw new Error(`socket closed while waiting for ${count} ${type} frames`)
        await new Promise<void>((resolve) => this.#waiters.push(resolve))
      }
    })(), ms, `${count} ${type} frames`)
  }

  /** Collects `count` frames of `type`, in arrival order. */
  async take (type: string, count: number, ms = 10_000): Promise<Frame[]> {
    const deadline = Date.now() + ms
    const out: Frame[] = []
    while (out.length < count) out.push(await this.next(type, Math.max(1, deadline - Date.now())))
    return out
  }

  async close (): Promise<void> {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close()
    await within(this.closed, 5000, 'close')
  }
}
