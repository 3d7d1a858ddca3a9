/**
 * Browser (and Node) client for the fastify-wsc wire protocol v1: authenticates with a bearer token in
 * the `wsc.bearer.<token>` subprotocol, reconnects with full-jitter backoff (honouring `reconnect`
 * frames and `Retry-After`), resumes with `since` and `epoch` so no user message is lost across
 * reconnects and drains, reports when the server lost history, drops the duplicates that resumption can
 * bring, acknowledges what it processed, and turns `ack`/`error` frames into resolved/rejected promises.
 * Every failure ends in a status event, never in an exception. No dependencies; uses the platform's
 * WebSocket unless one is given (the `ws` package's works in Node).
 */
import { fullJitterDelay } from './backoff.js'
import { TypedEvents } from './events.js'
import { attemptFailure, closeFailure, parseRetryAfter, type AttemptReport, type WscFailure } from './failure.js'
import { parseWelcome, resumeReset, type WscMessage, type WscReset, type WscWelcome } from './frames.js'

export { fullJitterDelay } from './backoff.js'
export type { WscFailure, WscFailureKind } from './failure.js'
export type { WscMessage, WscReset, WscWelcome } from './frames.js'

/**
 * `idle` before {@link WscClient.connect}; `connecting` during each attempt; `open` once welcomed and
 * rooms rejoined; `reconnecting` while waiting for the next attempt; `closed` after
 * {@link WscClient.close} or a final failure (401, 403, close 1008).
 */
export type WscStatus = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'

/** What a `status` event says besides the status. */
export interface WscStatusDetail {
  /** Why the previous connection or attempt ended (`reconnecting`, and `closed` by the server). */
  failure?: WscFailure
  /** The close code, when the server closed an open connection. */
  code?: number
  /** `reconnecting`: ms until the next attempt. */
  delayMs?: number
  /** `connecting`/`reconnecting`: the number of the next attempt since the last welcome (0: first connect). */
  attempt?: number
}

/** The events of a {@link WscClient}; listeners that throw are reported as `error`, never rethrown. */
export interface WscClientEvents {
  status: [status: WscStatus, detail: WscStatusDetail]
  welcome: [welcome: WscWelcome]
  /** A new message (user messages at most once per `seq`). */
  message: [message: WscMessage]
  /** The server could not resume after `lastSeq`: it replays what it still holds (see PROTOCOL.md). */
  reset: [reset: WscReset]
  /** Room membership the server changed (`joined`/`left` frames). */
  joined: [room: string]
  left: [room: string]
  /** A listener threw. */
  error: [error: unknown]
}

/** A refused frame, as the server's `error` frame said (or `UNAVAILABLE`/`CLOSED` from the client). */
export class WscFrameError extends Error {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.name = 'WscFrameError'
    this.code = code
  }
}

interface SocketEvent { data?: unknown, code?: number, reason?: string, error?: unknown }
interface SocketLike {
  readonly readyState: number
  send (data: string): void
  close (code?: number, reason?: string): void
  addEventListener (type: string, listener: (event: SocketEvent) => void): void
  /** `ws` only: the refused upgrade's status and headers. */
  on?: (type: 'unexpected-response', listener: (request: unknown, response: { statusCode?: number, headers: Record<string, string | string[] | undefined> }) => void) => unknown
  terminate?: () => void
}
type SocketConstructor = new (url: string, protocols?: string | string[]) => SocketLike

export interface WscClientOptions {
  /** `ws://host/ws` or `wss://host/ws`. */
  url: string
  /** Sent as the `wsc.bearer.<token>` subprotocol (browsers cannot set headers). */
  token?: string
  /**
   * The last user `seq` already processed (e.g. kept in localStorage). Omitted: the server starts after
   * the user's acknowledged seq; 0: everything the server still holds for the user.
   */
  since?: number
  /** The `epoch` that `since` came from (the welcome's; {@link WscClient.epoch}). */
  epoch?: string
  onMessage?: (message: WscMessage) => void
  onStatus?: (status: WscStatus, detail: WscStatusDetail) => void
  onWelcome?: (welcome: WscWelcome) => void
  /** Acknowledge processed user messages to the server automatically (default true). */
  autoAck?: boolean
  /** Backoff base: the n-th retry waits a random time up to `reconnectDelayMs * 2^n` (default 500). */
  reconnectDelayMs?: number
  /** Backoff cap (default 15 000). */
  maxReconnectDelayMs?: number
  /** An attempt without `welcome` after this long is abandoned (default 10 000). */
  openTimeoutMs?: number
  /** How long a `publish`/`join`/`leave` waits for its `ack` (default 10 000). */
  requestTimeoutMs?: number
  /** A WebSocket class with the browser API (the `ws` package's works); default `globalThis.WebSocket`. */
  WebSocket?: unknown
}

const OPEN = 1
type Timer = ReturnType<typeof setTimeout>

export class WscClient {
  readonly #options: WscClientOptions & Required<Pick<WscClientOptions, 'autoAck' | 'reconnectDelayMs' | 'maxReconnectDelayMs' | 'openTimeoutMs' | 'requestTimeoutMs'>>
  readonly #Socket: SocketConstructor
  readonly #events = new TypedEvents<WscClientEvents>((err) => this.#listenerFailed(err))
  readonly #requests = new Map<string, { resolve: () => void, reject: (err: Error) => void, timer: Timer }>()
  readonly #rooms = new Set<string>()
  #socket: SocketLike | undefined
  #status: WscStatus = 'idle'
  #failure: WscFailure | undefined
  #token: string | undefined
  #lastSeq: number | undefined
  #epoch: string | undefined
  #ackedSeq = 0
  #attempt = 0
  #afterMs: number | undefined
  #stopped = true
  #nextId = 0
  #reportingError = false
  /** A frame arrived since the heartbeat's last tick. */
  #heard = false
  #reconnectTimer: Timer | undefined
  #openTimer: Timer | undefined
  #ackTimer: Timer | undefined
  #heartbeat: ReturnType<typeof setInterval> | undefined
  /** Set after `welcome`. */
  connectionId: string | undefined
  nodeId: string | undefined

  /** Throws for a URL that is not ws:/wss: or when there is no WebSocket implementation. */
  constructor (options: WscClientOptions) {
    this.#options = { autoAck: true, reconnectDelayMs: 500, maxReconnectDelayMs: 15_000, openTimeoutMs: 10_000, requestTimeoutMs: 10_000, ...options }
    const { protocol } = new URL(options.url)
    if (protocol !== 'ws:' && protocol !== 'wss:') throw new TypeError(`url must be ws: or wss:, not ${protocol}`)
    const Socket = options.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket
    if (typeof Socket !== 'function') throw new TypeError('no WebSocket implementation: pass options.WebSocket (e.g. the ws package)')
    this.#Socket = Socket as SocketConstructor
    this.#token = options.token
    this.#lastSeq = options.since
    this.#epoch = options.epoch
    if (options.onMessage !== undefined) this.on('message', options.onMessage)
    if (options.onStatus !== undefined) this.on('status', options.onStatus)
    if (options.onWelcome !== undefined) this.on('welcome', options.onWelcome)
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof WscClientEvents> (type: K, listener: (...args: WscClientEvents[K]) => void): () => void {
    return this.#events.on(type, listener)
  }

  off<K extends keyof WscClientEvents> (type: K, listener: (...args: WscClientEvents[K]) => void): void {
    this.#events.off(type, listener)
  }

  get status (): WscStatus { return this.#status }
  /** Why the last connection or attempt ended, if one did. */
  get failure (): WscFailure | undefined { return this.#failure }
  /** The highest user `seq` processed (0 before any); persist it with {@link epoch} to resume after a reload. */
  get lastSeq (): number { return this.#lastSeq ?? 0 }
  /** The epoch of the user's stream, from the last welcome (undefined on servers without epochs). */
  get epoch (): string | undefined { return this.#epoch }
  /** Rooms this client joined; joined again after every reconnect. */
  get rooms (): string[] { return [...this.#rooms] }
  /** Sets the token for the next attempt (e.g. a refreshed one after a 401; then call {@link connect}). */
  setToken (token: string | undefined): void { this.#token = token }

  /** Opens the connection and keeps it open until {@link close} or a final failure. No-op while active. */
  connect (): void {
    if (!this.#stopped) return
    this.#stopped = false
    this.#attempt = 0
    this.#open()
  }

  /** Closes for good: no reconnect; pending requests reject with `CLOSED`. */
  close (): void {
    if (this.#stopped && this.#status === 'closed') return
    this.#stopped = true
    clearTimeout(this.#reconnectTimer)
    this.#flushAck()
    const socket = this.#socket
    this.#detach()
    if (socket !== undefined) closeQuietly(socket, 1000)
    this.#failRequests(new WscFrameError('CLOSED', 'client closed'))
    this.#setStatus('closed', {})
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

  #open (): void {
    this.#setStatus('connecting', { attempt: this.#attempt })
    const url = new URL(this.#options.url)
    const since = this.#lastSeq
    const epoch = since === undefined ? undefined : this.#epoch
    if (since !== undefined) url.searchParams.set('since', String(since))
    if (epoch !== undefined) url.searchParams.set('epoch', epoch)
    const protocols = this.#token === undefined ? ['wsc.v1'] : ['wsc.v1', `wsc.bearer.${this.#token}`]
    let socket: SocketLike
    try {
      socket = new this.#Socket(url.toString(), protocols)
    } catch (err) {
      this.#lost({ kind: 'invalid', final: true, message: `cannot open a WebSocket: ${(err as Error).message}` })
      return
    }
    this.#socket = socket
    const report: AttemptReport = {}
    let welcomed = false
    // `ws` emits 'error' as an event: without this listener a failed connect would crash the process.
    socket.addEventListener('error', (event) => { report.error = event })
    socket.on?.('unexpected-response', (_request, response) => {
      report.status = response.statusCode
      const retryAfterMs = parseRetryAfter(response.headers['retry-after'])
      if (retryAfterMs !== undefined) report.retryAfterMs = retryAfterMs
      socket.terminate?.()
    })
    socket.addEventListener('message', (event) => {
      if (this.#socket !== socket) return
      this.#heard = true
      const frame = parseFrame(event.data)
      if (frame?.type === 'welcome' && !welcomed) {
        welcomed = true
        this.#onWelcome(frame, since, epoch)
      } else if (frame !== undefined && welcomed) {
        this.#onFrame(frame)
      }
    })
    socket.addEventListener('close', (event) => {
      if (this.#socket !== socket) return
      const code = event.code ?? 1006
      if (welcomed) this.#lost(closeFailure(code, event.reason))
      else this.#lost(attemptFailure({ ...report, code, ...(event.reason === undefined ? {} : { reason: event.reason }) }, url.host))
    })
    this.#openTimer = setTimeout(() => {
      if (this.#socket !== socket || welcomed) return
      this.#abandon(socket, { kind: 'timeout', final: false, message: `no welcome from ${url.host} within ${this.#options.openTimeoutMs} ms` })
    }, this.#options.openTimeoutMs)
  }

  #onWelcome (frame: Record<string, unknown>, since: number | undefined, epoch: string | undefined): void {
    clearTimeout(this.#openTimer)
    const welcome = parseWelcome(frame)
    const socket = this.#socket
    if (welcome === undefined || socket === undefined) {
      if (socket !== undefined) this.#abandon(socket, { kind: 'closed', final: false, message: 'malformed welcome frame' })
      return
    }
    this.#attempt = 0
    this.connectionId = welcome.connectionId
    this.nodeId = welcome.nodeId
    const reset = resumeReset(welcome, since, epoch)
    if (welcome.epoch !== undefined) this.#epoch = welcome.epoch
    if (reset !== undefined) {
      // Start over from what the server holds: its seqs may restart below ours.
      this.#lastSeq = 0
      this.#ackedSeq = 0
    }
    this.#events.emit('welcome', welcome)
    if (reset !== undefined) this.#events.emit('reset', reset)
    if (reset?.reason === 'seq-behind') {
      // This server replays after our stale since only: ask again from 0 for everything it holds.
      this.#afterMs = 0
      this.#abandon(socket, { kind: 'closed', final: false, message: `the server's seq ${welcome.seq} is behind ours (${reset.previousSeq}): it lost history; fetching what it holds` })
      return
    }
    this.#watch(socket, welcome.heartbeatMs)
    // 'open' once the rooms of the previous connection are joined again.
    Promise.allSettled([...this.#rooms].map((room) => this.#request({ type: 'join', room })))
      .then(() => { if (this.#socket === socket) this.#setStatus('open', {}) }, () => {})
  }

  #onFrame (frame: Record<string, unknown>): void {
    switch (frame.type) {
      case 'message': {
        const message = frame as unknown as WscMessage
        if (typeof message.seq === 'number') {
          if (this.#lastSeq !== undefined && message.seq <= this.#lastSeq) return
          this.#lastSeq = message.seq
          this.#scheduleAck()
        }
        this.#events.emit('message', message)
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
      case 'joined':
      case 'left':
        if (typeof frame.room === 'string') this.#events.emit(frame.type, frame.room)
        return
      case 'reconnect':
        if (typeof frame.afterMs === 'number' && frame.afterMs >= 0) this.#afterMs = frame.afterMs
    }
  }

  /** Watches a welcomed connection: a ping after a silent heartbeat, given up after a second one. */
  #watch (socket: SocketLike, heartbeatMs: number): void {
    let pinged = false
    this.#heard = true
    this.#heartbeat = setInterval(() => {
      if (this.#heard) {
        this.#heard = false
        pinged = false
      } else if (!pinged) {
        pinged = this.#send({ type: 'ping' })
      } else {
        this.#abandon(socket, { kind: 'timeout', final: false, message: `no frame from the server for ${2 * heartbeatMs} ms` })
      }
    }, heartbeatMs)
  }

  /** Gives up on a socket at once (its events are ignored from now on) and handles the failure. */
  #abandon (socket: SocketLike, failure: WscFailure): void {
    this.#lost(failure)
    closeQuietly(socket, 4000)
  }

  /** The current socket ended or failed: reconnect, or stop on a final failure. */
  #lost (failure: WscFailure): void {
    this.#detach()
    this.#failure = failure
    this.#failRequests(new WscFrameError('UNAVAILABLE', 'connection closed before the server answered'))
    if (this.#stopped) return
    const detail: WscStatusDetail = { failure }
    if (failure.code !== undefined) detail.code = failure.code
    if (failure.final) {
      this.#stopped = true
      this.#setStatus('closed', detail)
      return
    }
    const backoff = fullJitterDelay(this.#attempt, this.#options.reconnectDelayMs, this.#options.maxReconnectDelayMs)
    const delayMs = this.#afterMs ?? Math.max(failure.retryAfterMs ?? 0, backoff)
    this.#afterMs = undefined
    this.#attempt++
    this.#setStatus('reconnecting', { ...detail, delayMs, attempt: this.#attempt })
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined
      if (!this.#stopped) this.#open()
    }, delayMs)
  }

  #detach (): void {
    this.#socket = undefined
    clearTimeout(this.#openTimer)
    clearInterval(this.#heartbeat)
    this.#heartbeat = undefined
  }

  #setStatus (status: WscStatus, detail: WscStatusDetail): void {
    this.#status = status
    this.#events.emit('status', status, detail)
  }

  #listenerFailed (err: unknown): void {
    if (this.#reportingError || !this.#events.has('error')) {
      console.error('fastify-wsc client: a listener threw', err)
      return
    }
    this.#reportingError = true
    try {
      this.#events.emit('error', err)
    } finally {
      this.#reportingError = false
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
    const seq = this.#lastSeq ?? 0
    if (seq > this.#ackedSeq && this.#send({ type: 'ack', seq })) this.#ackedSeq = seq
  }
}

function parseFrame (data: unknown): Record<string, unknown> | undefined {
  try {
    const frame: unknown = JSON.parse(String(data))
    return typeof frame === 'object' && frame !== null && !Array.isArray(frame) ? frame as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

function closeQuietly (socket: SocketLike, code: number): void {
  try {
    socket.close(code)
  } catch {
    socket.terminate?.()
  }
}
