/**
 * The client side of the protocol: one text frame from a connection, rate-limited, parsed, authorized
 * and carried out (ping, join, leave, publish, ack); every refusal is an `error` frame. A connection
 * that closed while a frame awaited something (an authorize hook, Redis) is left alone afterwards, and
 * one the server is closing costs nothing: its frames are neither handled, counted nor logged.
 */
import { PayloadError, StoredNotDeliveredError, TargetError, UnavailableError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { MessageStore } from '../store/message-store.js'
import {
  CloseCode, ErrorCode, PONG_FRAME, encodeAck, encodeError, encodeJoined, encodeLeft, parseClientFrame,
  type ClientFrame, type FrameId
} from '../protocol.js'
import type { Router } from '../router/router.js'
import type { WscConfig } from '../config.js'
import type { ClientConnection } from './client-connection.js'
import type { LocalHub } from './hub.js'
import type { WscObserver } from './observer.js'
import type { SendResult, Sender } from './sender.js'

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
/**
 * Decides whether a connection may publish. Default: only to rooms the sender has joined; publishing
 * to users (direct messages, each stored for the recipient) is the app's to allow.
 */
export type AuthorizePublish = (context: AuthorizePublishContext) => boolean | Promise<boolean>

export interface MessageEvent { connectionId: string, userId: string, to: { user: string } | { room: string }, data: unknown, id: string }

export interface ClientFramesOptions {
  websocket: WscConfig['websocket']
  hub: LocalHub
  router: Router
  store: MessageStore
  sender: Sender
  observer: WscObserver
  log: Logger
  authorizeJoin?: AuthorizeJoin | undefined
  authorizePublish?: AuthorizePublish | undefined
  /** A client publish was accepted (the app's `message` event). */
  onMessage: (event: MessageEvent) => void
}

const EMPTY_ROOMS: ReadonlySet<string> = new Set()
const defaultAuthorizeJoin: AuthorizeJoin = () => true
const defaultAuthorizePublish: AuthorizePublish = ({ to, rooms }) => 'room' in to && rooms.has(to.room)

export class ClientFrames {
  readonly #options: ClientFramesOptions
  readonly #config: WscConfig['websocket']
  readonly #authorizeJoin: AuthorizeJoin
  readonly #authorizePublish: AuthorizePublish

  /** Refuses a binary frame (the protocol is text only) with 1003; counted as an invalid frame. */
  refuseBinary (connection: ClientConnection): void {
    if (!accepting(connection)) return
    this.#options.observer.frameIn('invalid')
    connection.close(CloseCode.UNSUPPORTED_DATA, 'binary frames are not supported')
  }

  constructor (options: ClientFramesOptions) {
    this.#options = options
    this.#config = options.websocket
    this.#authorizeJoin = options.authorizeJoin ?? defaultAuthorizeJoin
    this.#authorizePublish = options.authorizePublish ?? defaultAuthorizePublish
  }

  /** Handles one text frame from a client. Never throws; refusals become `error` frames. */
  async handle (connection: ClientConnection, text: string): Promise<void> {
    if (!accepting(connection)) return
    connection.alive()
    const parsed = parseClientFrame(text)
    const id = parsed.ok ? parsed.frame.id : parsed.id
    const { observer, log } = this.#options
    observer.frameIn(parsed.ok ? parsed.frame.type : 'invalid')
    if (!connection.limiter.take(Date.now())) {
      observer.dropped('rate_limit')
      const strikes = connection.limiter.strike(Date.now())
      if (strikes >= this.#config.rateLimitStrikes) {
        log.warn({ connectionId: connection.id, userId: connection.userId, code: CloseCode.POLICY }, 'sustained rate-limit abuse')
        connection.close(CloseCode.POLICY, 'rate limit exceeded')
        // An abuser's answer to the close is not worth reading: it is dropped after close_timeout.
        connection.stopReading()
      } else {
        reply(connection, encodeError(ErrorCode.RATE_LIMITED, `more than ${this.#config.rateLimit} frames per second`, id))
      }
      return
    }
    if (!parsed.ok) {
      reply(connection, encodeError(parsed.code, parsed.message, parsed.id))
      return
    }
    try {
      await this.#carryOut(connection, parsed.frame)
    } catch (err) {
      const code = err instanceof UnavailableError ? ErrorCode.UNAVAILABLE : ErrorCode.INTERNAL
      if (connection.firstReport(`frame failed: ${code}`)) log.warn({ err, connectionId: connection.id, code }, 'frame failed')
      reply(connection, encodeError(code, code === ErrorCode.UNAVAILABLE ? 'a dependency is unavailable; retry' : 'internal error', id))
    }
  }

  async #carryOut (connection: ClientConnection, frame: ClientFrame): Promise<void> {
    switch (frame.type) {
      case 'ping':
        reply(connection, PONG_FRAME)
        break
      case 'join':
        if (!await this.#join(connection, frame.room, frame.id)) return
        break
      case 'leave': {
        const { room } = frame
        if (connection.rooms?.has(room) !== true) return refuse(connection, ErrorCode.NOT_FOUND, `not in room ${room}`, frame.id)
        if (this.#options.hub.leave(connection, room)) await this.#options.router.unsubscribeRoom(room)
        reply(connection, encodeLeft(room))
        break
      }
      case 'publish':
        if (!await this.#publish(connection, frame.to, frame.data, frame.id)) return
        break
      case 'ack':
        await this.#options.store.ack(connection.userId, frame.seq)
        break
    }
    if (frame.id !== undefined) reply(connection, encodeAck(frame.id))
  }

  /** Whether the join went through (else it was refused, or the connection went away meanwhile). */
  async #join (connection: ClientConnection, room: string, id: FrameId | undefined): Promise<boolean> {
    const { hub, router } = this.#options
    if (connection.rooms?.has(room) !== true) {
      if ((connection.rooms?.size ?? 0) >= this.#config.maxRoomsPerConnection) {
        refuse(connection, ErrorCode.FORBIDDEN, `at most ${this.#config.maxRoomsPerConnection} rooms per connection`, id)
        return false
      }
      if (!await this.#authorizeJoin({ userId: connection.userId, connectionId: connection.id, room })) {
        refuse(connection, ErrorCode.FORBIDDEN, `not allowed to join ${room}`, id)
        return false
      }
      // Released while the hook ran: joining now would leave a member (and a subscription) nobody removes.
      if (hub.get(connection.id) !== connection) return false
      if (hub.join(connection, room)) await router.subscribeRoom(room)
    }
    reply(connection, encodeJoined(room))
    return true
  }

  async #publish (connection: ClientConnection, to: { user: string } | { room: string }, data: unknown, id: FrameId | undefined): Promise<boolean> {
    const allowed = await this.#authorizePublish({ userId: connection.userId, connectionId: connection.id, to, data, rooms: connection.rooms ?? EMPTY_ROOMS })
    if (!allowed) {
      refuse(connection, ErrorCode.FORBIDDEN, `not allowed to publish to ${'room' in to ? `room ${to.room}` : `user ${to.user}`}`, id)
      return false
    }
    const { sender } = this.#options
    let result: SendResult
    try {
      result = 'user' in to
        ? await sender.sendToUser(to.user, data, { from: connection.userId })
        : await sender.sendToRoom(to.room, data, { from: connection.userId })
    } catch (err) {
      // @fastify/error sets `code` on each instance, not on the prototype: compare by class.
      if (err instanceof PayloadError || err instanceof TargetError) {
        refuse(connection, ErrorCode.BAD_REQUEST, (err as Error).message, id)
        return false
      }
      // Stored: the recipient gets it when its connections catch up; for the sender it was accepted.
      if (!(err instanceof StoredNotDeliveredError)) throw err
      this.#options.log.warn({ err, connectionId: connection.id }, 'publish stored, not pushed live yet')
      result = { id: err.id, seq: err.seq }
    }
    this.#options.onMessage({ connectionId: connection.id, userId: connection.userId, to, data, id: result.id })
    return true
  }
}

function reply (connection: ClientConnection, frame: string): void {
  connection.write(Buffer.from(frame))
}

function refuse (connection: ClientConnection, code: ErrorCode, message: string, id: FrameId | undefined): void {
  reply(connection, encodeError(code, message, id))
}

/** Whether a frame from the connection is handled: not once the server is closing it, when nothing more is read. */
function accepting (connection: ClientConnection): boolean {
  if (connection.isOpen) return true
  // Read before the socket stopped.
  connection.stopReading()
  return false
}
