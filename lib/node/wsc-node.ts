/**
 * One pod's messaging node: its lifecycle (start, drain, close), the set-up and release of its
 * connections, and the wiring of its parts — the hub of local connections, the client-frame handler,
 * the sender, the router that reaches other pods and the store that numbers and keeps user messages.
 * Framework-free; `plugins/websocket` wires sockets into it.
 */
import { randomBytes } from 'node:crypto'
import type { WscConfig } from '../config.js'
import { errorMessage } from '../errors.js'
import { fulfilsWithin } from '../fulfils-within.js'
import type { Logger } from '../logger.js'
import type { MessageStore } from '../store/message-store.js'
import { CloseCode, encodeJoined, encodeReconnect, encodeWelcome } from '../protocol.js'
import type { NodeHealth } from '../readiness.js'
import { makeConnectionId, type Router } from '../router/router.js'
import { ClientConnection, type ConnectionSettings, type WireSocket } from './client-connection.js'
import { ClientFrames, type AuthorizeJoin, type AuthorizePublish, type MessageEvent } from './client-frames.js'
import { DrainPause, planDrain } from './drain.js'
import { LocalHub } from './hub.js'
import { IsolatedEvents } from './listeners.js'
import { ObserverList } from './observer.js'
import { catchUp, planResume, replayMissed, type Resume, type ResumePlan } from './replay.js'
import { applyRoutedEvent } from './routed-events.js'
import { Sender } from './sender.js'
import { closeOldestBeyond } from './user-limit.js'

/** Who a connection belongs to, as `authenticate` decided. */
export interface AuthResult {
  userId: string
  /** Rooms the connection joins at once (no `authorizeJoin` call: `authenticate` already decided). */
  rooms?: string[]
}

export interface ConnectEvent { connectionId: string, userId: string, nodeId: string }
export interface DisconnectEvent { connectionId: string, userId: string, nodeId: string, code: number }

/** Events of `app.wsc`. */
export interface WscEvents {
  connect: [ConnectEvent]
  disconnect: [DisconnectEvent]
  message: [MessageEvent]
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

export class WscNode {
  readonly hub = new LocalHub()
  readonly observers: ObserverList
  readonly events: IsolatedEvents<WscEvents>
  readonly sender: Sender
  readonly frames: ClientFrames
  readonly #options: WscNodeOptions
  readonly #config: WscConfig['websocket']
  readonly #router: Router
  readonly #log: Logger
  readonly #setups = new Map<ClientConnection, Promise<void>>()
  readonly #settings: ConnectionSettings
  readonly #pause = new DrainPause()
  #nodeId = ''
  #heartbeat: NodeJS.Timeout | undefined
  #started = false
  /** Settles when the start in progress ends, either way; undefined before {@link start}. */
  #startEnded: Promise<unknown> | undefined
  /** Why {@link start} failed; the node never starts in this process then. */
  #failed: string | undefined
  #closing = false
  #draining = false
  #drained: Promise<void> | undefined

  constructor (options: WscNodeOptions) {
    this.#options = options
    this.#config = options.websocket
    this.#router = options.router
    this.#log = options.log
    const delivered = (enqueueToWriteMs: number, publishToWriteMs: number | undefined): void => this.observers.delivered(enqueueToWriteMs, publishToWriteMs)
    // Deliveries are timed (a clock read per frame) only while someone observes them.
    this.observers = new ObserverList((err) => this.#log.error({ err }, 'an observer failed'), () => {
      this.#settings.onDelivered = this.observers.timesDeliveries ? delivered : undefined
    })
    this.events = new IsolatedEvents<WscEvents>(options.log)
    this.sender = new Sender({
      router: options.router,
      store: options.store,
      observer: this.observers,
      maxPayload: this.#config.maxPayload,
      state: () => this.#closing ? 'closing' : this.#started ? 'open' : 'starting'
    })
    this.frames = new ClientFrames({ ...options, hub: this.hub, sender: this.sender, observer: this.observers, onMessage: (event) => this.events.emit('message', event) })
    const observers = this.observers
    this.#settings = {
      messageBufferSize: this.#config.messageBufferSize,
      maxBufferedBytes: this.#config.maxBufferedBytes,
      closeTimeout: this.#config.closeTimeout,
      rateLimit: this.#config.rateLimit,
      rateBurst: this.#config.rateBurst,
      onOverflow: (connection: ClientConnection) => {
        observers.dropped('slow_consumer')
        this.#log.warn({ connectionId: connection.id, userId: connection.userId, code: CloseCode.TRY_AGAIN_LATER }, 'slow consumer: send buffer overflow')
      },
      onSeqGap: (connection: ClientConnection, afterSeq: number, beforeSeq: number) => {
        replayMissed(connection, options.store, this.#log, afterSeq, beforeSeq).catch((err: unknown) => this.#log.error({ err }, 'seq gap replay failed'))
      }
    }
  }

  /** This node's id; empty until started. */
  get nodeId (): string {
    return this.#nodeId
  }

  /** True from the start of {@link drain} on. */
  get draining (): boolean {
    return this.#draining
  }

  /** True once {@link start} finished and until {@link drain} or {@link close} begins. */
  get accepting (): boolean {
    return this.#started && !this.#closing && !this.#draining
  }

  /** This node's lifecycle and its router's and store's health, for readiness and metrics. */
  health (): NodeHealth {
    return {
      started: this.#started,
      ...(this.#failed === undefined ? {} : { failed: this.#failed }),
      draining: this.#draining,
      connections: this.hub.size,
      rooms: this.hub.roomCount,
      router: this.#router.status(),
      store: this.#options.store.status?.()
    }
  }

  /**
   * Waits, at most `ms`, for a start in progress to end (at once when none is): an upgrade that arrives
   * between `listen()` and the end of a start made in `onListen` is served rather than refused.
   */
  async afterStart (ms: number): Promise<void> {
    if (this.#startEnded !== undefined && !this.#started && this.#failed === undefined) await fulfilsWithin(this.#startEnded, ms)
  }

  /** Connects the router under this node's identity and starts the heartbeat. */
  async start (address: NodeAddress): Promise<void> {
    const started = this.#start(address)
    this.#startEnded = started.catch(() => {})
    await started
  }

  async #start (address: NodeAddress): Promise<void> {
    this.#nodeId = address.nodeId
    const context = { hub: this.hub, router: this.#router, observer: this.observers, log: this.#log }
    try {
      await this.#router.start({
        ...address,
        version: this.#options.version,
        connections: () => this.hub.size,
        afterGap: () => { catchUp([...this.hub], this.#options.store, this.#log).catch((err: unknown) => this.#log.error({ err }, 'catch-up after a routing gap failed')) }
      }, (event) => applyRoutedEvent(context, event))
    } catch (err) {
      this.#failed = errorMessage(err)
      throw err
    }
    this.#heartbeat = setInterval(() => this.hub.beat(this.#log), this.#config.heartbeatInterval).unref()
    this.#started = true
  }

  /**
   * Stops accepting, closes every connection with `code` and waits up to `graceMs` (default `websocket.close_timeout`) for the close
   * handshakes; connections still open then are dropped.
   */
  async closeConnections (code: number, graceMs: number = this.#config.closeTimeout): Promise<void> {
    this.#closing = true
    this.#pause.interrupt()
    clearInterval(this.#heartbeat)
    for (const connection of this.hub) connection.close(code, 'server shutting down')
    await this.#untilEmpty(graceMs)
    await this.#dropRemaining(code)
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
      await this.#pause.until(firstCloseAt + step.atMs)
      if (this.#closing) break
      const connection = connections[i] as ClientConnection
      if (connection.write(Buffer.from(encodeReconnect(step.afterMs)))) connection.close(CloseCode.RESTART, 'draining: reconnect with since')
    }
    // Clients get `websocket.close_timeout` to answer the last close handshakes, as every close does.
    await this.#untilEmpty(this.#config.closeTimeout)
    await this.#dropRemaining(CloseCode.RESTART)
    this.#closing = true
    clearInterval(this.#heartbeat)
    await this.#stopRouting()
    this.#log.info({ connections: connections.length }, 'drained: connections moved, node deregistered')
  }

  /** Closes every connection (1001), lets sends in flight settle, then closes the router (the store's owner closes the store). */
  async close (): Promise<void> {
    if (!this.#closing || this.hub.size > 0) await this.closeConnections(CloseCode.GOING_AWAY, 0)
    // A failed drain already rejected to its caller; closing goes on.
    await this.#drained?.catch(() => {})
    await Promise.allSettled([...this.#setups.values()])
    await this.#stopRouting()
  }

  /** Lets sends in flight settle, then deregisters. */
  async #stopRouting (): Promise<void> {
    await this.sender.settle()
    if (!this.#started) return
    this.#started = false
    await this.#router.close()
  }

  /** Drops connections that did not finish their close handshake in time. */
  async #dropRemaining (code: number): Promise<void> {
    for (const connection of this.hub) {
      connection.terminate()
      await this.release(connection, code)
    }
  }

  /** Resolves when the last local connection is released, or after `timeoutMs`. */
  #untilEmpty (timeoutMs: number): Promise<void> {
    if (this.hub.size === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.events.off('disconnect', onDisconnect)
        resolve()
      }
      const onDisconnect = (): void => {
        if (this.hub.size === 0) done()
      }
      const timer = setTimeout(done, timeoutMs)
      this.events.on('disconnect', onDisconnect)
    })
  }

  // ---- connections (called by the transport) ----

  /**
   * Registers a just-upgraded socket. Synchronous so the transport can attach its listeners at once;
   * frames routed to the connection are held until the set-up has sent `welcome` and the replay.
   */
  open (socket: WireSocket, auth: AuthResult, resume: Resume = {}): ClientConnection {
    const connection = new ClientConnection(makeConnectionId(this.nodeId, Date.now(), randomBytes(4).toString('hex')), auth.userId, socket, this.#settings)
    this.hub.add(connection)
    this.observers.connectionOpened()
    connection.beginReplay()
    this.#setups.set(connection, this.#setup(connection, auth, resume).finally(() => this.#setups.delete(connection)))
    return connection
  }

  /**
   * The socket closed with `reported` (1006 when dropped): forgets the connection everywhere, and
   * reports the code the server sent when it was the server that closed. Safe to call more than once.
   */
  async release (connection: ClientConnection, reported: number): Promise<void> {
    const code = connection.closeCode(reported)
    connection.markClosed()
    await this.#setups.get(connection)
    const emptied = this.hub.remove(connection)
    if (emptied === undefined) return
    await Promise.allSettled([
      ...emptied.map((room) => this.#router.unsubscribeRoom(room)),
      this.#router.removePresence(connection.userId, connection.id)
    ])
    this.observers.connectionClosed(code)
    this.#log.debug({ connectionId: connection.id, userId: connection.userId, code }, 'connection closed')
    this.events.emit('disconnect', { connectionId: connection.id, userId: connection.userId, nodeId: this.nodeId, code })
  }

  async #setup (connection: ClientConnection, auth: AuthResult, resume: Resume): Promise<void> {
    let plan: ResumePlan
    try {
      for (const room of auth.rooms ?? []) {
        if (this.hub.join(connection, room)) await this.#router.subscribeRoom(room)
      }
      await this.#router.addPresence(connection.userId, connection.id)
      const head = await this.#options.store.head(connection.userId)
      plan = planResume(head, resume)
      // Live messages numbered up to here are in the replay: the first one above it is no gap.
      connection.deliveredUpTo(head.latestSeq)
      connection.write(Buffer.from(encodeWelcome({
        nodeId: this.nodeId,
        connectionId: connection.id,
        userId: connection.userId,
        heartbeatMs: this.#config.heartbeatInterval,
        seq: head.latestSeq,
        epoch: head.epoch,
        recovered: plan.recovered,
        oldestSeq: head.oldestSeq
      })))
      if (!plan.recovered) this.#log.info({ connectionId: connection.id, userId: connection.userId, since: resume.since, epoch: resume.epoch, head }, 'resume: the client\'s history is not the store\'s; replaying all it holds')
      for (const room of auth.rooms ?? []) connection.write(Buffer.from(encodeJoined(room)))
      this.#log.debug({ connectionId: connection.id, userId: connection.userId }, 'connection opened')
      this.events.emit('connect', { connectionId: connection.id, userId: connection.userId, nodeId: this.nodeId })
      await closeOldestBeyond(this.#router, connection.userId, this.#config.maxConnectionsPerUser)
    } catch (err) {
      this.#log.warn({ err, connectionId: connection.id, code: CloseCode.INTERNAL }, 'connection set-up failed')
      connection.close(CloseCode.INTERNAL, 'set-up failed')
      return
    }
    await replayMissed(connection, this.#options.store, this.#log, plan.afterSeq)
  }

  /** The router behind the presence and node queries of `app.wsc`. */
  get router (): Router {
    return this.#router
  }
}
