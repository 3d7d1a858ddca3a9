/**
 * The server-side sends of `app.wsc` (to a user, a room, a connection, everyone) and the control
 * events (kick, disconnect, join, leave): validated, numbered and stored when user-addressed, handed to
 * the router, and tracked while in flight so that a shutdown lets them settle.
 */
import { randomUUID } from 'node:crypto'
import { ClosedError, PayloadError, StoredNotDeliveredError, TargetError } from '../errors.js'
import type { MessageStore } from '../store/message-store.js'
import { CloseCode, describeBadTarget, encodeMessage, nameProblem, serializeData, type Target } from '../protocol.js'
import type { Router, StoreAndRoute } from '../router/router.js'
import { targetKind, type TargetKind, type WscObserver } from './observer.js'

/** What a send resolved with: the message id, and the user's `seq` for `sendToUser`. */
export interface SendResult {
  id: string
  seq?: number
}

export interface SendOptions {
  /** The sending user; null (the default) for server-sent messages. */
  from?: string | null
  /**
   * `sendToUser`: an id of the caller's (1–128 of `A-Z a-z 0-9 . _ : -`, e.g. an idempotency key). A
   * retry with the same id while the user's stream still holds the message stores nothing new and
   * resolves with the first one's seq. Default: a random UUID.
   */
  id?: string
}

/** What a message id of the caller's may be. */
const MESSAGE_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** Whether sends are accepted: not before the node started, not once it is closing. */
export type SendState = 'starting' | 'open' | 'closing'

export interface SenderOptions {
  router: Router
  store: MessageStore
  observer: WscObserver
  /** `websocket.max_payload`: the largest message the server sends. */
  maxPayload: number
  state: () => SendState
}

export class Sender {
  readonly #options: SenderOptions
  /**
   * Sends that have not settled yet: a count, not a `Set` of them. A long-lived `Set` that gains and loses
   * an entry per message keeps every message it ever held alive through young collections (each table it
   * outgrows links to its successor, and the first one is old), so all of them reached the old generation
   * (docs/performance.md, step 8).
   */
  #inflight = 0
  /** Called once nothing is in flight. */
  #whenSettled: Array<() => void> = []
  /** The router's one-step path for user messages, when it shares a backend with the store. */
  readonly #storeAndRoute: StoreAndRoute | undefined

  constructor (options: SenderOptions) {
    this.#options = options
    this.#storeAndRoute = options.router.storeAndRoute?.(options.store)
  }

  /** Resolves once every send in flight settled (none can start once the node is closing). */
  async settle (): Promise<void> {
    if (this.#inflight > 0) await new Promise<void>((resolve) => this.#whenSettled.push(resolve))
  }

  /** Numbers, stores and delivers a message to every device of the user on any node. */
  sendToUser (userId: string, data: unknown, options: SendOptions = {}): Promise<SendResult> {
    return this.#track('user', (async () => {
      const to = { user: userId }
      const message = this.#prepare(to, data, options.from)
      if (options.id !== undefined) {
        if (typeof options.id !== 'string' || !MESSAGE_ID.test(options.id)) throw new TargetError('id must be 1 to 128 characters of A-Z a-z 0-9 . _ : -')
        message.id = options.id
      }
      const idempotent = options.id !== undefined
      if (this.#storeAndRoute !== undefined) {
        const stored = await this.#storeAndRoute(userId, { ...message, to }, { idempotent, publishedAt: Date.now() })
        return { id: stored.id, seq: stored.seq }
      }
      const stored = await this.#options.store.append(userId, { ...message, to }, { idempotent })
      try {
        await this.#options.router.toUser(userId, { kind: 'deliver', target: to, frame: encodeMessage(stored), seq: stored.seq, prevSeq: stored.prevSeq, publishedAt: Date.now() })
      } catch (err) {
        throw new StoredNotDeliveredError(stored.id, stored.seq, err)
      }
      return { id: stored.id, seq: stored.seq }
    })())
  }

  /** Delivers a message, live only, to every member of the room on any node. */
  sendToRoom (room: string, data: unknown, options: SendOptions = {}): Promise<SendResult> {
    return this.#live({ room }, data, options, (to, event) => this.#options.router.toRoom(to.room, event))
  }

  /** Delivers a message, live only, to one connection on any node. */
  sendToConnection (connectionId: string, data: unknown, options: SendOptions = {}): Promise<SendResult> {
    return this.#live({ connection: connectionId }, data, options, (to, event) => this.#options.router.toConnection(to.connection, event))
  }

  /** Delivers a message, live only, to every connection on every node. */
  broadcast (data: unknown, options: SendOptions = {}): Promise<SendResult> {
    return this.#live({ broadcast: true as const }, data, options, (_to, event) => this.#options.router.toAll(event))
  }

  /** Closes every connection of the user, on any node, with 1008. */
  async kick (userId: string, reason = 'kicked'): Promise<void> {
    requireNames({ userId })
    await this.#options.router.toUser(userId, { kind: 'kick', userId, code: CloseCode.POLICY, reason })
  }

  /** Closes one connection, on any node, with 1000. */
  async disconnect (connectionId: string, reason = 'disconnected by the server'): Promise<void> {
    requireNames({ connectionId })
    await this.#options.router.toConnection(connectionId, { kind: 'disconnect', connectionId, code: CloseCode.NORMAL, reason })
  }

  /** Puts every current connection of the user, on any node, in the room. */
  async joinRoom (userId: string, room: string): Promise<void> {
    requireNames({ userId, room })
    await this.#options.router.toUser(userId, { kind: 'join', userId, room })
  }

  /** Takes every current connection of the user, on any node, out of the room. */
  async leaveRoom (userId: string, room: string): Promise<void> {
    requireNames({ userId, room })
    await this.#options.router.toUser(userId, { kind: 'leave', userId, room })
  }

  #live<T extends Target> (to: T, data: unknown, options: SendOptions, route: (to: T, event: { kind: 'deliver', target: T, frame: string, publishedAt: number }) => Promise<void>): Promise<SendResult> {
    return this.#track(targetKind(to), (async () => {
      const message = this.#prepare(to, data, options.from)
      await route(to, { kind: 'deliver', target: to, frame: encodeMessage({ ...message, to }), publishedAt: Date.now() })
      return { id: message.id }
    })())
  }

  #prepare (to: Target, data: unknown, from: string | null | undefined): { id: string, dataJson: string, from: string | null, ts: number } {
    const state = this.#options.state()
    if (state === 'closing') throw new ClosedError('the node is shutting down')
    if (state === 'starting') throw new ClosedError('the node is starting; retry shortly (it starts once the app is ready, or listens when its id is <ip>-<port>)')
    const reason = describeBadTarget(to, ['user', 'room', 'connection', 'broadcast'])
    if (reason !== undefined) throw new TargetError(reason)
    if (from !== undefined && from !== null) requireNames({ from })
    const serialized = serializeData(data, this.#options.maxPayload)
    if (!serialized.ok) {
      this.#options.observer.dropped('payload')
      throw new PayloadError(serialized.reason)
    }
    return { id: randomUUID(), dataJson: serialized.json, from: from ?? null, ts: Date.now() }
  }

  #track (target: TargetKind, send: Promise<SendResult>): Promise<SendResult> {
    this.#inflight++
    return send.then((result) => {
      this.#settled()
      this.#options.observer.messageSent(target)
      return result
    }, (err: unknown) => {
      this.#settled()
      throw err
    })
  }

  #settled (): void {
    if (--this.#inflight > 0 || this.#whenSettled.length === 0) return
    const waiting = this.#whenSettled
    this.#whenSettled = []
    for (const resolve of waiting) resolve()
  }
}

/** Throws `WSC_ERR_TARGET` naming the first of `names` that cannot be a name. */
function requireNames (names: Record<string, unknown>): void {
  for (const [field, value] of Object.entries(names)) {
    const problem = nameProblem(field, value)
    if (problem !== undefined) throw new TargetError(problem)
  }
}
