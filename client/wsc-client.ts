/**
 * Browser (and Node) client for the fastify-wsc wire protocol v1: authenticates with a bearer token in
 * the `wsc.bearer.<token>` subprotocol, reconnects with backoff and jitter, resumes with `since` so no
 * user message is lost across reconnects and drains, drops the duplicates that resumption can bring,
 * acknowledges what it processed, and turns `ack`/`error` frames into resolved/rejected promises.
 * No dependencies; uses the platform's WebSocket unless one is given.
 */

/** What the server sends in a `message` frame. */
export interface WscMessage {
  id: string
  seq?: number
  from: string | null
  to: { user: string } | { room: string } | { connection: string } | { broadcast: true }
  data: unknown
  ts: number
}

export type WscStatus = 'connecting' | 'open' | 'reconnecting' | 'closed'

/** A refused frame, as the server's `error` frame said. */
export class WscFrameError extends Error {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.name = 'WscFrameError'
    this.code = code
  }
}

interface SocketLike {
  readonly readyState: number
  send (data: string): void
  close (code?: number, reason?: string): void
  addEventListener (type: string, listener: (event: { data?: unknown, code?: number }) => void): void
}

type SocketConstructor = new (url: string, protocols?: string | string[]) => SocketLike

export interface WscClientOptions {
  /** `ws://host/ws` or `wss://host/ws`. */
  url: string
  /** Sent as the `wsc.bearer.<token>` subprotocol (browsers cannot set headers). */
  token?: string
  /** The last user `seq` already processed (e.g. kept in localStorage); default 0: the server's acked seq. */
  since?: number
  /** Called for every new message (user messages at most once per `seq`). */
  onMessage?: (message: WscMessage) => void
  onStatus?: (status: WscStatus, detail?: { code?: number }) => void
  /** Called after `welcome`: the node and connection ids. */
  onWelcome?: (welcome: { nodeId: string, connectionId: string, userId: string, seq: number }) => void
  /** Acknowledge processed user messages to the server automatically (default true). */
  autoAck?: boolean
  /** First reconnect delay; doubles up to `maxReconnectDelayMs`, with jitter. */
  reconnectDelayMs?: number
  maxReconnectDelayMs?: number
  /** How long a `publish`/`join`/`leave` waits for its `ack`. */
  requestTimeoutMs?: number
  /** A WebSocket class with the browser API (the `ws` package's works); default `globalThis.WebSocket`. */
  WebSocket?: unknown
}

const OPEN = 1
/** Close codes after which the client does not reconnect on its own. */
const FINAL_CLOSE_CODES = new Set([1008])

export class WscClient {
  #options: Required<Pick<WscClientOptions, 'autoAck' | 'reconnectDelayMs' | 'maxReconnectDelayMs' | 'requestTimeoutMs'>> & WscClientOptions
  #socket: SocketLike | undefined
  #lastSeq: number
  #ackedSeq = 0
  #ackTimer: ReturnType<typeof setTimeout> | undefined
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined
  #attempt = 0
  #nextDelayMs: number | undefined
  #stopped = false
  #nextId = 0
  readonly #requests = new Map<string, { resolve: () => void, reject: (err: Error) => void, timer: ReturnType<typeof setTimeout> }>()
  readonly #rooms = new Set<string>()
  /** Set after `welcome`. */
  connectionId: string | undefined
  nodeId: string | undefined

  constructor (options: WscClientOptions) {
    this.#options = { autoAck: true, reconnectDelayMs: 500, maxReconnectDelayMs: 15_000, requestTimeoutMs: 10_000, ...options }
    this.#lastSeq = options.since ?? 0
  }

  /** The highest user `seq` received; persist it to resume after a page reload. */
  get lastSeq (): number {
    return this.#lastSeq
  }

  /** Opens the connection (and keeps it open until {@link close}). */
  connect (): void {
    this.#stopped = false
    this.#open('connecting')
  }

  /** Closes for good: no reconnect. */
  close (): void {
    this.#stopped = true
    clearTimeout(this.#reconnectTimer)
    this.#flushAck()
    this.#socket?.close(1000)
    this.#failRequests(new WscFrameError('CLOSED', 'client closed'))
    this.#options.onStatus?.('closed')
  }

  /** Sends to a user (durable) or a room (live); resolves on the server's `ack`. */
  publish (to: { user: string } | { room: string }, data: unknown): Promise<void> {
    return this.#request({ type: 'publish', to, data })
  }

  /** Joins a room; rejoined automatically after a reconnect. */
  async join (room: string): Promise<void> {
    await this.#request({ type: 'join', room })
    this.#rooms.add(room)
  }

  async leave (room: string): Promise<void> {
    this.#rooms.delete(room)
    await this.#request({ type: 'leave', room })
  }

  #url (): string {
    const url = new URL(this.#options.url)
    if (this.#lastSeq > 0) url.searchParams.set('since', String(this.#lastSeq))
    return url.toString()
  }

  #open (status: WscStatus): void {
    const Socket = (this.#options.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket) as SocketConstructor | undefined
    if (Socket === undefined) throw new Error('no WebSocket implementation: pass options.WebSocket')
    this.#options.onStatus?.(status)
    const protocols = this.#options.token === undefined ? ['wsc.v1'] : ['wsc.v1', `wsc.bearer.${this.#options.token}`]
    const socket = new Socket(this.#url(), protocols)
    this.#socket = socket
    socket.addEventListener('message', (event) => this.#onFrame(String(event.data)))
    socket.addEventListener('close', (event) => {
      if (this.#socket !== socket) return
      this.#socket = undefined
      this.#failRequests(new WscFrameError('UNAVAILABLE', 'connection closed before the server answered'))
      if (this.#stopped) return
      if (FINAL_CLOSE_CODES.has(event.code ?? 0)) {
        this.#stopped = true
        this.#options.onStatus?.('closed', { code: event.code })
        return
      }
      this.#scheduleReconnect(event.code)
    })
  }

  #scheduleReconnect (code: number | undefined): void {
    const base = Math.min(this.#options.maxReconnectDelayMs, this.#options.reconnectDelayMs * 2 ** this.#attempt)
    const delay = this.#nextDelayMs ?? base / 2 + Math.random() * base / 2
    this.#nextDelayMs = undefined
    this.#attempt++
    this.#options.onStatus?.('reconnecting', code === undefined ? {} : { code })
    this.#reconnectTimer = setTimeout(() => this.#open('reconnecting'), delay)
  }

  #onFrame (text: string): void {
    let frame: Record<string, unknown>
    try {
      frame = JSON.parse(text) as Record<string, unknown>
    } catch {
      return
    }
    switch (frame.type) {
      case 'welcome':
        this.#attempt = 0
        this.connectionId = String(frame.connectionId)
        this.nodeId = String(frame.nodeId)
        this.#options.onWelcome?.({ nodeId: this.nodeId, connectionId: this.connectionId, userId: String(frame.userId), seq: Number(frame.seq) })
        // 'open' once the rooms of the previous connection are joined again.
        Promise.allSettled([...this.#rooms].map((room) => this.#request({ type: 'join', room })))
          .then(() => this.#options.onStatus?.('open'))
        return
      case 'message': {
        const message = frame as unknown as WscMessage
        if (typeof message.seq === 'number') {
          if (message.seq <= this.#lastSeq) return
          this.#lastSeq = message.seq
          this.#scheduleAck()
        }
        this.#options.onMessage?.(message)
        return
      }
      case 'ack':
      case 'error': {
        const request = this.#requests.get(String(frame.id))
        if (request === undefined) return
        this.#requests.delete(String(frame.id))
        clearTimeout(request.timer)
        if (frame.type === 'ack') request.resolve()
        else request.reject(new WscFrameError(String(frame.code), String(frame.message)))
        return
      }
      case 'reconnect':
        this.#nextDelayMs = Number(frame.afterMs) || undefined
    }
  }

  #send (frame: Record<string, unknown>): boolean {
    if (this.#socket?.readyState !== OPEN) return false
    this.#socket.send(JSON.stringify(frame))
    return true
  }

  #request (frame: Record<string, unknown>): Promise<void> {
    const id = `c-${++this.#nextId}`
    return new Promise((resolve, reject) => {
      if (!this.#send({ ...frame, id })) {
        reject(new WscFrameError('UNAVAILABLE', 'not connected'))
        return
      }
      const timer = setTimeout(() => {
        this.#requests.delete(id)
        reject(new WscFrameError('UNAVAILABLE', 'no answer from the server'))
      }, this.#options.requestTimeoutMs)
      this.#requests.set(id, { resolve, reject, timer })
    })
  }

  #failRequests (err: Error): void {
    for (const { reject, timer } of this.#requests.values()) {
      clearTimeout(timer)
      reject(err)
    }
    this.#requests.clear()
  }

  #scheduleAck (): void {
    if (!this.#options.autoAck || this.#ackTimer !== undefined) return
    this.#ackTimer = setTimeout(() => this.#flushAck(), 200)
  }

  #flushAck (): void {
    clearTimeout(this.#ackTimer)
    this.#ackTimer = undefined
    if (this.#lastSeq > this.#ackedSeq && this.#send({ type: 'ack', seq: this.#lastSeq })) this.#ackedSeq = this.#lastSeq
  }
}
