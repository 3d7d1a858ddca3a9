import { EventEmitter } from 'node:events'
import { randomBytes, randomUUID } from 'node:crypto'
import { ClientConnection, type ConnectionSettings, type WireSocket } from './client-connection.js'
import type { WscConfig } from './config.js'
import { DRAIN_CLOSE_GRACE_MS, planDrain } from './drain.js'
import { ClosedError, PayloadError, TargetError, UnavailableError } from './errors.js'
import { LocalHub } from './hub.js'
import type { MessageStore } from './store/message-store.js'
import { NOOP_OBSERVER, targetKind, type TargetKind, type WscObserver } from './observer.js'
import {
  CloseCode, ErrorCode, PONG_FRAME, describeBadTarget, encodeAck, encodeError, encodeJoined, encodeLeft,
  encodeMessage, encodeReconnect, encodeWelcome, isValidName, parseClientFrame, serializeData,
  type ClientFrame, type FrameId, type Target
} from './protocol.js'
import type { NodeHealth } from './readiness.js'
import {
  makeConnectionId, parseConnectionId,
  type NodeInfo, type PresenceEntry, type RoutedEvent, type Router, type RouterStatus
} from './router.js'

/** pino's shape, so `fastify.log` fits. */
export interface Logger {
  debug (obj: object, msg?: string): void
  info (obj: object, msg?: string): void
  warn (obj: object, msg?: string): void
  error (obj: object, msg?: string): void
}

/** Who a connection belongs to, as `authenticate` decided. */
export interface AuthResult {
  userId: string
  /** Rooms the connection joins at once (no `authorizeJoin` call: `authenticate` already decided). */
  rooms?: string[]
}

export interface AuthorizeJoinContext {
  userId: string
  connectionId: string
  room: string
}

export interface AuthorizePublishContext {
  userId: string
  connectionId: string
  to: { user: string } | { room: string }
  data: unknown
  /** Rooms the sending connection is in. */
  rooms: ReadonlySet<string>
}

/** Decides whether a connection may join a room. Default: any room. */
export type AuthorizeJoin = (context: AuthorizeJoinContext) => boolean | Promise<boolean>
/** Decides whether a connection may publish. Default: rooms the sender has joined, and any user. */
export type AuthorizePublish = (context: AuthorizePublishContext) => boolean | Promise<boolean>

export interface ConnectEvent { connectionId: string, userId: string, nodeId: string }
export interface DisconnectEvent { connectionId: string, userId: string, nodeId: string, code: number }
export interface MessageEvent { connectionId: string, userId: string, to: { user: string } | { room: string }, data: unknown, id: string }

/** Events of `app.wsc`. */
export interface WscEvents {
  connect: [ConnectEvent]
  disconnect: [DisconnectEvent]
  message: [MessageEvent]
}

/** What a send resolved with: the message id, and the user's `seq` for `sendToUser`. */
export interface SendResult {
  id: string
  seq?: number
}

export interface SendOptions {
  /** The sending user; null (the default) for server-sent messages. */
  from?: string | null
}

/** This pod's identity as other nodes see it. */
export interface NodeAddress {
  nodeId: string
  ip: string
  /** Read whenever the registry entry is written: known once the server listens. */
  port: () => number | null
}

/** How a drain spreads its closes; each default comes from the `drain.*` configuration. */
export interface DrainOptions {
  /** Closes are spread evenly over this many ms (`drain.window`). */
  windowMs?: number
  /** ms between `/ready` turning 503 and the first close (`drain.delay`). */
  delayMs?: number
  /** Upper bound of the random `afterMs` of `reconnect` frames (`drain.reconnect_jitter`). */
  reconnectJitterMs?: number
}

export interface WscNodeOptions {
  version: string
  /** The `websocket.*` settings. */
  websocket: WscConfig['websocket']
  /** Defaults of {@link WscNode.drain} (`drain.*`). */
  drain: Pick<WscConfig['drain'], 'window' | 'delay' | 'reconnectJitter'>
  router: Router
  store: MessageStore
  log: Logger
  authorizeJoin?: AuthorizeJoin | undefined
  authorizePublish?: AuthorizePublish | undefined
}

const REPLAY_PAGE = 200

const defaultAuthorizeJoin: AuthorizeJoin = () => true
const defaultAuthorizePublish: AuthorizePublish = ({ to, rooms }) => !('room' in to) || rooms.has(to.room)

/**
 * One pod's messaging node: its local hub of connections, the router that reaches other pods, and the
 * store that numbers and keeps user messages. Framework-free; `plugins/websocket` wires sockets into it.
 */
export class WscNode extends EventEmitter<WscEvents> {
  readonly hub = new LocalHub()
  #nodeId = ''
  readonly #options: WscNodeOptions
  readonly #config: WscConfig['websocket']
  readonly #router: Router
  readonly #store: MessageStore
  readonly #log: Logger
  readonly #authorizeJoin: AuthorizeJoin
  readonly #authorizePublish: AuthorizePublish
  readonly #setups = new Map<ClientConnection, Promise<void>>()
  readonly #settings: ConnectionSettings
  #heartbeat: NodeJS.Timeout | undefined
  #started = false
  #closing = false
  #draining = false
  #drained: Promise<void> | undefined
  /** Ends the wait for the next drain step early (a close during the drain). */
  #wakeDrain: (() => void) | undefined
  /** Sends that have not settled yet: awaited before the router and the store close. */
  readonly #inflight = new Set<Promise<unknown>>()
  #observer: WscObserver = NOOP_OBSERVER

  constructor (options: WscNodeOptions) {
    super()
    this.#options = options
    this.#config = options.websocket
    this.#router = options.router
    this.#store = options.store
    this.#log = options.log
    this.#authorizeJoin = options.authorizeJoin ?? defaultAuthorizeJoin
    this.#authorizePublish = options.authorizePublish ?? defaultAuthorizePublish
    this.#settings = {
      messageBufferSize: this.#config.messageBufferSize,
      maxBufferedBytes: this.#config.maxBufferedBytes,
      rateLimit: this.#config.rateLimit,
      rateBurst: this.#config.rateBurst,
      onOverflow: (connection: ClientConnection) => {
        this.#observer.dropped('slow_consumer')
        this.#log.warn({ connectionId: connection.id, userId: connection.userId, code: CloseCode.TRY_AGAIN_LATER }, 'slow consumer: send buffer overflow')
      },
      onSeqGap: (connection: ClientConnection, afterSeq: number, beforeSeq: number) => {
        this.#replay(connection, afterSeq, beforeSeq).catch((err: unknown) => this.#log.error({ err }, 'seq gap replay failed'))
      }
    }
  }

  /** Reports this node's work to `observer` (metrics) from now on, instead of the previous one. */
  observe (observer: WscObserver): void {
    this.#observer = observer
    this.#settings.onDelivered = observer === NOOP_OBSERVER ? undefined : (enqueueToWriteMs, publishToWriteMs) => observer.delivered(enqueueToWriteMs, publishToWriteMs)
  }

  /** True from the start of {@link drain} on. */
  get draining (): boolean {
    return this.#draining
  }

  /** This node's lifecycle and its router's and store's health, for readiness and metrics. */
  health (): NodeHealth {
    return {
      started: this.#started,
      draining: this.#draining,
      connections: this.hub.size,
      router: this.#router.status(),
      store: this.#store.status?.()
    }
  }

  /** This node's id; empty until started. */
  get nodeId (): string {
    return this.#nodeId
  }

  /** True once {@link start} finished and until {@link drain} or {@link close} begins. */
  get accepting (): boolean {
    return this.#started && !this.#closing && !this.#draining
  }

  /** Connects the router under this node's identity and starts the heartbeat. */
  async start (address: NodeAddress): Promise<void> {
    this.#nodeId = address.nodeId
    await this.#router.start({
      ...address,
      version: this.#options.version,
      connections: () => this.hub.size
    }, (event) => this.#onRoutedEvent(event))
    this.#heartbeat = setInterval(() => this.#beat(), this.#config.heartbeatInterval).unref()
    this.#started = true
  }

  /**
   * Stops accepting, closes every connection with `code` and waits up to `graceMs` for the close
   * handshakes; connections still open then are dropped.
   */
  async closeConnections (code: number, graceMs: number): Promise<void> {
    this.#closing = true
    this.#wakeDrain?.()
    clearInterval(this.#heartbeat)
    for (const connection of this.hub) connection.close(code, 'server shutting down')
    await this.#untilEmpty(graceMs)
    await this.#dropRemaining(code)
  }

  /** Drops connections that did not finish their close handshake in time. */
  async #dropRemaining (code: number): Promise<void> {
    for (const connection of this.hub) {
      connection.terminate()
      await this.release(connection, code)
    }
  }

  /**
   * Moves every client to other nodes without losing messages: from the call on, {@link accepting} is
   * false (upgrades get 503) and `health().draining` is true (`/ready` 503); after `delayMs` each live
   * connection gets `{"type":"reconnect","afterMs":<random>}` and close 1012, spread evenly over
   * `windowMs`; then sends still in flight settle and the node deregisters (the router closes).
   * Sends made after the connections are gone reject with `WSC_ERR_CLOSED`. Calling it again returns
   * the same promise; a {@link close} during the drain cuts the window short.
   */
  drain (options: DrainOptions = {}): Promise<void> {
    const defaults = this.#options.drain
    this.#drained ??= this.#drain(options.windowMs ?? defaults.window, options.delayMs ?? defaults.delay, options.reconnectJitterMs ?? defaults.reconnectJitter)
    return this.#drained
  }

  async #drain (windowMs: number, delayMs: number, reconnectJitterMs: number): Promise<void> {
    this.#draining = true
    const connections = [...this.hub]
    this.#log.info({ connections: connections.length, windowMs, delayMs }, 'draining: not ready, refusing upgrades')
    const plan = planDrain(connections.length, windowMs, reconnectJitterMs)
    const firstCloseAt = performance.now() + delayMs
    for (let i = 0; i < connections.length && !this.#closing; i++) {
      const step = plan[i] as { atMs: number, afterMs: number }
      const wait = firstCloseAt + step.atMs - performance.now()
      if (wait > 0) await this.#pauseDrain(wait)
      if (this.#closing) break
      const connection = connections[i] as ClientConnection
      if (connection.write(Buffer.from(encodeReconnect(step.afterMs)))) {
        connection.close(CloseCode.RESTART, 'draining: reconnect with since')
      }
    }
    await this.#untilEmpty(DRAIN_CLOSE_GRACE_MS)
    await this.#dropRemaining(CloseCode.RESTART)
    this.#closing = true
    clearInterval(this.#heartbeat)
    await this.#flush()
    if (this.#started) {
      this.#started = false
      await this.#router.close()
    }
    this.#log.info({ connections: connections.length }, 'drained: connections moved, node deregistered')
  }

  #pauseDrain (ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.#wakeDrain = undefined
        resolve()
      }
      const timer = setTimeout(done, ms).unref()
      this.#wakeDrain = done
    })
  }

  /** Waits until every send in flight settled (none can start: the node is closing). */
  async #flush (): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight])
  }

  #track (target: TargetKind, send: Promise<SendResult>): Promise<SendResult> {
    this.#inflight.add(send)
    return send.then((result) => {
      this.#inflight.delete(send)
      this.#observer.messageSent(target)
      return result
    }, (err: unknown) => {
      this.#inflight.delete(send)
      throw err
    })
  }

  /** Resolves when the last local connection is released, or after `timeoutMs`. */
  #untilEmpty (timeoutMs: number): Promise<void> {
    if (this.hub.size === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.off('disconnect', onDisconnect)
        resolve()
      }
      const onDisconnect = (): void => {
        if (this.hub.size === 0) done()
      }
      const timer = setTimeout(done, timeoutMs)
      this.on('disconnect', onDisconnect)
    })
  }

  /** Closes every connection (1001), lets sends in flight settle, then closes the router (the store's owner closes the store). */
  async close (): Promise<void> {
    if (!this.#closing || this.hub.size > 0) await this.closeConnections(CloseCode.GOING_AWAY, 0)
    // A failed drain already rejected to its caller; closing goes on.
    await this.#drained?.catch(() => {})
    await Promise.allSettled([...this.#setups.values()])
    await this.#flush()
    if (this.#started) {
      this.#started = false
      await this.#router.close()
    }
  }

  // ---- connections (called by the transport) ----

  /**
   * Registers a just-upgraded socket. Synchronous so the transport can attach its listeners at once;
   * frames routed to the connection are held until {@link setup} has sent `welcome` and the replay.
   */
  open (socket: WireSocket, auth: AuthResult, since?: number): ClientConnection {
    const now = Date.now()
    const connection = new ClientConnection(makeConnectionId(this.nodeId, now, randomBytes(4).toString('hex')), auth.userId, socket, this.#settings, now)
    this.hub.add(connection)
    this.#observer.connectionOpened()
    connection.beginReplay()
    this.#setups.set(connection, this.#setup(connection, auth, since).finally(() => this.#setups.delete(connection)))
    return connection
  }

  /** The socket closed: forgets the connection everywhere. Safe to call more than once. */
  async release (connection: ClientConnection, code: number): Promise<void> {
    connection.markClosed()
    await this.#setups.get(connection)
    const emptied = this.hub.remove(connection)
    if (emptied === undefined) return
    await Promise.allSettled([
      ...emptied.map((room) => this.#router.unsubscribeRoom(room)),
      this.#router.removePresence(connection.userId, connection.id)
    ])
    this.#observer.connectionClosed(code)
    this.#log.debug({ connectionId: connection.id, userId: connection.userId, code }, 'connection closed')
    this.emit('disconnect', { connectionId: connection.id, userId: connection.userId, nodeId: this.nodeId, code })
  }

  async #setup (connection: ClientConnection, auth: AuthResult, since?: number): Promise<void> {
    try {
      for (const room of auth.rooms ?? []) {
        if (this.hub.join(connection, room)) await this.#router.subscribeRoom(room)
      }
      await this.#router.addPresence(connection.userId, connection.id)
      const latest = await this.#store.latestSeq(connection.userId)
      connection.write(Buffer.from(encodeWelcome({
        nodeId: this.nodeId,
        connectionId: connection.id,
        userId: connection.userId,
        heartbeatMs: this.#config.heartbeatInterval,
        seq: latest
      })))
      for (const room of auth.rooms ?? []) connection.write(Buffer.from(encodeJoined(room)))
      this.#log.debug({ connectionId: connection.id, userId: connection.userId }, 'connection opened')
      this.emit('connect', { connectionId: connection.id, userId: connection.userId, nodeId: this.nodeId })
      await this.#enforceUserLimit(connection.userId)
    } catch (err) {
      this.#log.warn({ err, connectionId: connection.id, code: CloseCode.INTERNAL }, 'connection set-up failed')
      connection.close(CloseCode.INTERNAL, 'set-up failed')
      return
    }
    await this.#replay(connection, since)
  }

  /**
   * Sends the user messages after `afterSeq` (default: after the user's acknowledged seq), page by
   * page at the pace the client reads, then releases live traffic held meanwhile. Also fills a seq gap
   * in live traffic (a lower seq from another node not here yet), so user messages go out in order: then
   * only the seqs below `beforeSeq` are read, and the live message itself goes out from the held frame.
   */
  async #replay (connection: ClientConnection, afterSeq: number | undefined, beforeSeq = Infinity): Promise<void> {
    let cursor = 0
    try {
      cursor = afterSeq ?? await this.#store.ackedSeq(connection.userId)
      for (;;) {
        const page = await this.#store.since(connection.userId, cursor, REPLAY_PAGE)
        let reached = false
        for (const message of page) {
          if (message.seq >= beforeSeq) {
            reached = true
            break
          }
          if (!connection.write(Buffer.from(encodeMessage(message)))) return
          cursor = message.seq
        }
        if (reached || page.length < REPLAY_PAGE) break
        if (!await connection.whenWritable()) return
      }
    } catch (err) {
      this.#log.warn({ err, connectionId: connection.id, code: CloseCode.TRY_AGAIN_LATER }, 'replay failed')
      connection.close(CloseCode.TRY_AGAIN_LATER, 'replay failed: reconnect with since')
      return
    }
    connection.endReplay(cursor)
  }

  /** Handles one text frame from a client. Never throws; refusals become `error` frames. */
  async handleFrame (connection: ClientConnection, text: string): Promise<void> {
    connection.alive()
    const parsed = parseClientFrame(text)
    const id = parsed.ok ? parsed.frame.id : parsed.id
    this.#observer.frameIn(parsed.ok ? parsed.frame.type : 'invalid')
    if (!connection.limiter.take(Date.now())) {
      this.#observer.dropped('rate_limit')
      const strikes = connection.limiter.strike(Date.now())
      if (strikes >= this.#config.rateLimitStrikes) {
        this.#log.warn({ connectionId: connection.id, userId: connection.userId, code: CloseCode.POLICY }, 'sustained rate-limit abuse')
        connection.close(CloseCode.POLICY, 'rate limit exceeded')
      } else {
        this.#reply(connection, encodeError(ErrorCode.RATE_LIMITED, `more than ${this.#config.rateLimit} frames per second`, id))
      }
      return
    }
    if (!parsed.ok) {
      this.#reply(connection, encodeError(parsed.code, parsed.message, parsed.id))
      return
    }
    try {
      await this.#handle(connection, parsed.frame)
    } catch (err) {
      const code = err instanceof UnavailableError ? ErrorCode.UNAVAILABLE : ErrorCode.INTERNAL
      this.#log.warn({ err, connectionId: connection.id, code }, 'frame failed')
      this.#reply(connection, encodeError(code, code === ErrorCode.UNAVAILABLE ? 'a dependency is unavailable; retry' : 'internal error', id))
    }
  }

  async #handle (connection: ClientConnection, frame: ClientFrame): Promise<void> {
    switch (frame.type) {
      case 'ping':
        this.#reply(connection, PONG_FRAME)
        break
      case 'join': {
        const { room } = frame
        if (connection.rooms?.has(room) !== true) {
          if ((connection.rooms?.size ?? 0) >= this.#config.maxRoomsPerConnection) {
            return this.#refuse(connection, ErrorCode.FORBIDDEN, `at most ${this.#config.maxRoomsPerConnection} rooms per connection`, frame.id)
          }
          if (!await this.#authorizeJoin({ userId: connection.userId, connectionId: connection.id, room })) {
            return this.#refuse(connection, ErrorCode.FORBIDDEN, `not allowed to join ${room}`, frame.id)
          }
          if (this.hub.join(connection, room)) await this.#router.subscribeRoom(room)
        }
        this.#reply(connection, encodeJoined(room))
        break
      }
      case 'leave': {
        const { room } = frame
        if (connection.rooms?.has(room) !== true) {
          return this.#refuse(connection, ErrorCode.NOT_FOUND, `not in room ${room}`, frame.id)
        }
        if (this.hub.leave(connection, room)) await this.#router.unsubscribeRoom(room)
        this.#reply(connection, encodeLeft(room))
        break
      }
      case 'publish': {
        const { to, data } = frame
        const allowed = await this.#authorizePublish({ userId: connection.userId, connectionId: connection.id, to, data, rooms: connection.rooms ?? EMPTY_ROOMS })
        if (!allowed) {
          const where = 'room' in to ? `room ${to.room}` : `user ${to.user}`
          return this.#refuse(connection, ErrorCode.FORBIDDEN, `not allowed to publish to ${where}`, frame.id)
        }
        let result: SendResult
        try {
          result = 'user' in to
            ? await this.sendToUser(to.user, data, { from: connection.userId })
            : await this.sendToRoom(to.room, data, { from: connection.userId })
        } catch (err) {
          // @fastify/error sets `code` on each instance, not on the prototype: compare by class.
          if (err instanceof PayloadError || err instanceof TargetError) {
            return this.#refuse(connection, ErrorCode.BAD_REQUEST, (err as Error).message, frame.id)
          }
          throw err
        }
        this.emit('message', { connectionId: connection.id, userId: connection.userId, to, data, id: result.id })
        break
      }
      case 'ack':
        await this.#store.ack(connection.userId, frame.seq)
        break
    }
    if (frame.id !== undefined) this.#reply(connection, encodeAck(frame.id))
  }

  #reply (connection: ClientConnection, frame: string): void {
    connection.write(Buffer.from(frame))
  }

  #refuse (connection: ClientConnection, code: ErrorCode, message: string, id: FrameId | undefined): void {
    this.#reply(connection, encodeError(code, message, id))
  }

  /** Pings every connection; terminates those that missed two pings. */
  #beat (): void {
    for (const connection of this.hub) {
      if (connection.missedPings >= 2) {
        this.#log.debug({ connectionId: connection.id, userId: connection.userId }, 'heartbeat missed twice: terminating')
        connection.terminate()
      } else {
        connection.ping()
      }
    }
  }

  async #enforceUserLimit (userId: string): Promise<void> {
    const max = this.#config.maxConnectionsPerUser
    if (max === 0) return
    const entries = await this.#router.presence(userId)
    if (entries.length <= max) return
    const age = (entry: PresenceEntry): number => parseConnectionId(entry.connectionId)?.startedAt ?? 0
    const oldest = entries.sort((a, b) => age(a) - age(b) || a.connectionId.localeCompare(b.connectionId))
    await Promise.all(oldest.slice(0, entries.length - max).map((entry) =>
      this.#router.toConnection(entry.connectionId, {
        kind: 'disconnect',
        connectionId: entry.connectionId,
        code: CloseCode.POLICY,
        reason: `more than ${max} connections for this user`
      })))
  }

  #onRoutedEvent (event: RoutedEvent): void {
    switch (event.kind) {
      case 'deliver':
        this.#observer.messagesOut(targetKind(event.target), this.hub.deliver(event.target, event.frame, event.seq, event.publishedAt))
        return
      case 'kick':
        for (const connection of this.hub.user(event.userId)) connection.close(event.code, event.reason)
        return
      case 'disconnect':
        this.hub.get(event.connectionId)?.close(event.code, event.reason)
        return
      case 'join': {
        const joined: ClientConnection[] = []
        let first = false
        for (const connection of this.hub.user(event.userId)) {
          if (connection.rooms?.has(event.room) === true) continue
          if (this.hub.join(connection, event.room)) first = true
          joined.push(connection)
        }
        // `joined` goes out once the room channel is subscribed, so traffic sent after it arrives.
        const notify = (): void => { for (const connection of joined) connection.write(Buffer.from(encodeJoined(event.room))) }
        if (first) this.#subscribeInBackground(event.room).finally(notify)
        else notify()
        return
      }
      case 'leave':
        for (const connection of this.hub.user(event.userId)) {
          if (connection.rooms?.has(event.room) !== true) continue
          if (this.hub.leave(connection, event.room)) this.#router.unsubscribeRoom(event.room).catch((err: unknown) => this.#log.warn({ err, room: event.room }, 'unsubscribe failed'))
          connection.write(Buffer.from(encodeLeft(event.room)))
        }
    }
  }

  #subscribeInBackground (room: string): Promise<void> {
    return this.#router.subscribeRoom(room).catch((err: unknown) => this.#log.warn({ err, room }, 'subscribe failed'))
  }

  // ---- the server-side API (app.wsc) ----

  #prepare (to: Target, data: unknown, from: string | null | undefined): { id: string, dataJson: string, from: string | null, ts: number } {
    if (this.#closing) throw new ClosedError('the node is shutting down')
    if (!this.#started) throw new ClosedError('the node is starting; retry shortly (it starts once the app is ready, or listens when its id is <ip>-<port>)')
    const reason = describeBadTarget(to, ['user', 'room', 'connection', 'broadcast'])
    if (reason !== undefined) throw new TargetError(reason)
    if (from !== undefined && from !== null && !isValidName(from)) throw new TargetError('from must be a non-empty string or null')
    const serialized = serializeData(data, this.#config.maxPayload)
    if (!serialized.ok) {
      this.#observer.dropped('payload')
      throw new PayloadError(serialized.reason)
    }
    return { id: randomUUID(), dataJson: serialized.json, from: from ?? null, ts: Date.now() }
  }

  /** Numbers, stores and delivers a message to every device of the user on any node. */
  sendToUser (userId: string, data: unknown, options: SendOptions = {}): Promise<SendResult> {
    return this.#track('user', this.#sendToUser(userId, data, options))
  }

  async #sendToUser (userId: string, data: unknown, options: SendOptions): Promise<SendResult> {
    const to = { user: userId }
    const message = this.#prepare(to, data, options.from)
    const stored = await this.#store.append(userId, { ...message, to })
    await this.#router.toUser(userId, { kind: 'deliver', target: to, frame: encodeMessage(stored), seq: stored.seq, publishedAt: Date.now() })
    return { id: stored.id, seq: stored.seq }
  }

  /** Delivers a message, live only, to every member of the room on any node. */
  sendToRoom (room: string, data: unknown, options: SendOptions = {}): Promise<SendResult> {
    return this.#track('room', this.#sendToRoom(room, data, options))
  }

  async #sendToRoom (room: string, data: unknown, options: SendOptions): Promise<SendResult> {
    const to = { room }
    const message = this.#prepare(to, data, options.from)
    await this.#router.toRoom(room, { kind: 'deliver', target: to, frame: encodeMessage({ ...message, to }), publishedAt: Date.now() })
    return { id: message.id }
  }

  /** Delivers a message, live only, to one connection on any node. */
  sendToConnection (connectionId: string, data: unknown, options: SendOptions = {}): Promise<SendResult> {
    return this.#track('connection', this.#sendToConnection(connectionId, data, options))
  }

  async #sendToConnection (connectionId: string, data: unknown, options: SendOptions): Promise<SendResult> {
    const to = { connection: connectionId }
    const message = this.#prepare(to, data, options.from)
    await this.#router.toConnection(connectionId, { kind: 'deliver', target: to, frame: encodeMessage({ ...message, to }), publishedAt: Date.now() })
    return { id: message.id }
  }

  /** Delivers a message, live only, to every connection on every node. */
  broadcast (data: unknown, options: SendOptions = {}): Promise<SendResult> {
    return this.#track('broadcast', this.#broadcast(data, options))
  }

  async #broadcast (data: unknown, options: SendOptions): Promise<SendResult> {
    const to = { broadcast: true as const }
    const message = this.#prepare(to, data, options.from)
    await this.#router.toAll({ kind: 'deliver', target: to, frame: encodeMessage({ ...message, to }), publishedAt: Date.now() })
    return { id: message.id }
  }

  /** Closes every connection of the user, on any node, with 1008. */
  async kick (userId: string, reason = 'kicked'): Promise<void> {
    if (!isValidName(userId)) throw new TargetError('userId must be a non-empty string')
    await this.#router.toUser(userId, { kind: 'kick', userId, code: CloseCode.POLICY, reason })
  }

  /** Closes one connection, on any node, with 1000. */
  async disconnect (connectionId: string, reason = 'disconnected by the server'): Promise<void> {
    if (!isValidName(connectionId)) throw new TargetError('connectionId must be a non-empty string')
    await this.#router.toConnection(connectionId, { kind: 'disconnect', connectionId, code: CloseCode.NORMAL, reason })
  }

  /** Puts every current connection of the user, on any node, in the room. */
  async joinRoom (userId: string, room: string): Promise<void> {
    if (!isValidName(userId) || !isValidName(room)) throw new TargetError('userId and room must be non-empty strings')
    await this.#router.toUser(userId, { kind: 'join', userId, room })
  }

  /** Takes every current connection of the user, on any node, out of the room. */
  async leaveRoom (userId: string, room: string): Promise<void> {
    if (!isValidName(userId) || !isValidName(room)) throw new TargetError('userId and room must be non-empty strings')
    await this.#router.toUser(userId, { kind: 'leave', userId, room })
  }

  /** Whether the user has a connection on any node. */
  async isOnline (userId: string): Promise<boolean> {
    return (await this.#router.presence(userId)).length > 0
  }

  /** The user's connections on every node. */
  async presence (userId: string): Promise<PresenceEntry[]> {
    return this.#router.presence(userId)
  }

  /** Connections across the cluster. */
  async onlineCount (): Promise<number> {
    return this.#router.onlineCount()
  }

  /** Live nodes with their connection counts. */
  async nodes (): Promise<NodeInfo[]> {
    return this.#router.nodes()
  }

  /** Health of the cross-node path (Redis reachable, Pub/Sub loopback probe and its latency). */
  routerStatus (): RouterStatus {
    return this.#router.status()
  }
}

const EMPTY_ROOMS: ReadonlySet<string> = new Set()
