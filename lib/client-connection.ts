import { CloseCode } from './protocol.js'
import { RateLimiter } from './rate-limiter.js'

/** What a connection needs of its socket; `ws`'s WebSocket has this shape. */
export interface WireSocket {
  readonly bufferedAmount: number
  readonly readyState: number
  send (data: Buffer, options: { binary: boolean }, cb: (err?: Error) => void): void
  ping (): void
  close (code: number, reason: string): void
  terminate (): void
}

/** Why a frame was not written. */
export type DropReason = 'slow_consumer' | 'rate_limit' | 'payload'

/** Limits shared by every connection of a node. */
export interface ConnectionSettings {
  /** Frames queued (written but not yet flushed to the kernel) before the connection is closed with 1013. */
  messageBufferSize: number
  /** Bytes in `bufferedAmount` before the connection is closed with 1013. */
  maxBufferedBytes: number
  rateLimit: number
  rateBurst: number
  /** One object for all connections: notified of overflows. */
  onOverflow: (connection: ClientConnection) => void
  /** Notified when a delivered frame reached the socket: ms since `deliver`, and since the sender published it. */
  onDelivered?: ((enqueueToWriteMs: number, publishToWriteMs: number | undefined) => void) | undefined
}

interface HeldFrame {
  frame: Buffer
  seq: number | undefined
  enqueuedAt: number
  publishedAt: number | undefined
}

const OPEN = 1

/**
 * One client connection: a bounded send path that never blocks anyone else (overflow closes this
 * connection with 1013), replay gating for `since`, heartbeat state and the inbound rate limit.
 */
export class ClientConnection {
  readonly id: string
  readonly userId: string
  readonly connectedAt: number
  /** Rooms this connection is in; created on first join. */
  rooms: Set<string> | undefined
  /** Pings sent without an answer since the last sign of life. */
  missedPings = 0
  readonly limiter: RateLimiter
  readonly #socket: WireSocket
  readonly #settings: ConnectionSettings
  #pending = 0
  #closed = false
  /** Frames routed here before `welcome` and the replay were sent; undefined once they were. */
  #held: HeldFrame[] | undefined
  /** Live user messages up to this seq were part of the replay. */
  #replayedSeq = 0
  #writableWaiters: Array<(open: boolean) => void> | undefined
  readonly #onWritten = (): void => {
    this.#pending--
    if (this.#writableWaiters !== undefined && this.#isBelowLowWater()) this.#wakeWriters(true)
  }

  constructor (id: string, userId: string, socket: WireSocket, settings: ConnectionSettings, now: number) {
    this.id = id
    this.userId = userId
    this.connectedAt = now
    this.#socket = socket
    this.#settings = settings
    this.limiter = new RateLimiter(settings.rateLimit, settings.rateBurst, now)
  }

  get isOpen (): boolean {
    return !this.#closed && this.#socket.readyState === OPEN
  }

  /** Frames handed to the socket and not yet flushed. */
  get pendingWrites (): number {
    return this.#pending
  }

  /**
   * Delivers a routed frame; held until the replay ends, and user messages (with `seq`) it sent are skipped.
   * `publishedAt` (epoch ms) is when the sending node published it, for the delivery latency.
   */
  deliver (frame: Buffer, seq?: number, publishedAt?: number): boolean {
    const enqueuedAt = performance.now()
    if (this.#held !== undefined) {
      if (this.#held.length >= this.#settings.messageBufferSize) {
        this.#overflow()
        return false
      }
      this.#held.push({ frame, seq, enqueuedAt, publishedAt })
      return true
    }
    if (seq !== undefined && seq <= this.#replayedSeq) return false
    return this.#send(frame, enqueuedAt, publishedAt)
  }

  /** Writes a frame now; closes the connection with 1013 when its send buffer is full. */
  write (frame: Buffer): boolean {
    return this.#send(frame, undefined, undefined)
  }

  #send (frame: Buffer, enqueuedAt: number | undefined, publishedAt: number | undefined): boolean {
    if (this.#closed) return false
    if (this.#pending >= this.#settings.messageBufferSize ||
        this.#socket.bufferedAmount + frame.length > this.#settings.maxBufferedBytes) {
      this.#overflow()
      return false
    }
    this.#pending++
    const onDelivered = this.#settings.onDelivered
    this.#socket.send(frame, { binary: false }, enqueuedAt === undefined || onDelivered === undefined
      ? this.#onWritten
      : (err) => {
          this.#onWritten()
          if (err === undefined || err === null) onDelivered(performance.now() - enqueuedAt, publishedAt === undefined ? undefined : Math.max(0, Date.now() - publishedAt))
        })
    return true
  }

  /** Holds routed frames until {@link endReplay}. */
  beginReplay (): void {
    this.#held ??= []
  }

  /** Ends the replay that sent every user message up to `replayedSeq`; releases the held ones after it. */
  endReplay (replayedSeq: number): void {
    const held = this.#held ?? []
    this.#held = undefined
    this.#replayedSeq = Math.max(this.#replayedSeq, replayedSeq)
    for (const { frame, seq, enqueuedAt, publishedAt } of held) {
      if ((seq === undefined || seq > this.#replayedSeq) && !this.#send(frame, enqueuedAt, publishedAt)) return
    }
  }

  /** Resolves true when the send buffer is at most half full, false when the connection closed first. */
  whenWritable (): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false)
    if (this.#isBelowLowWater()) return Promise.resolve(true)
    return new Promise((resolve) => {
      (this.#writableWaiters ??= []).push(resolve)
    })
  }

  /** Marks a sign of life (a pong or any frame). */
  alive (): void {
    this.missedPings = 0
  }

  ping (): void {
    if (this.#closed) return
    this.missedPings++
    this.#socket.ping()
  }

  /** Starts the closing handshake with `code`; later writes are refused. */
  close (code: number, reason: string): void {
    if (this.#closed) return
    this.markClosed()
    this.#socket.close(code, reason)
  }

  /** Drops the TCP connection without a handshake (dead peers). */
  terminate (): void {
    this.markClosed()
    this.#socket.terminate()
  }

  /** The socket closed (either side): refuse writes and wake waiters. */
  markClosed (): void {
    this.#closed = true
    this.#held = undefined
    if (this.#writableWaiters !== undefined) this.#wakeWriters(false)
  }

  #isBelowLowWater (): boolean {
    return this.#pending <= this.#settings.messageBufferSize / 2 &&
      this.#socket.bufferedAmount <= this.#settings.maxBufferedBytes / 2
  }

  #wakeWriters (open: boolean): void {
    const waiters = this.#writableWaiters ?? []
    this.#writableWaiters = undefined
    for (const wake of waiters) wake(open)
  }

  #overflow (): void {
    if (this.#closed) return
    this.#settings.onOverflow(this)
    this.close(CloseCode.TRY_AGAIN_LATER, 'send buffer overflow: reconnect with since')
  }
}
