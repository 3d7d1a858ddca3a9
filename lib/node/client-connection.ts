/**
 * One client connection: its bounded send path, the hold-back of live frames during a replay, seq
 * ordering of user messages, heartbeat state and its inbound rate limit.
 */
import { CloseCode } from '../protocol.js'
import { RateLimiter } from './rate-limiter.js'
import { corkForThisTurn, currentTurn, type Corkable } from './write-turns.js'

/** What a connection needs of its socket; `ws`'s WebSocket has this shape. */
export interface WireSocket {
  readonly bufferedAmount: number
  readonly readyState: number
  send (data: Buffer, options: { binary: boolean }, cb: (err?: Error) => void): void
  ping (): void
  close (code: number, reason: string): void
  terminate (): void
  /** Stops reading from the peer. */
  pause (): void
  /** `ws`'s TCP socket: corked while one turn writes several frames (absent: every frame is its own write). */
  readonly _socket?: Corkable | null
}

/** Why a frame was not written. */
export type DropReason = 'slow_consumer' | 'rate_limit' | 'payload'

/** Limits shared by every connection of a node. */
export interface ConnectionSettings {
  /** Frames queued (written but not yet flushed to the kernel) before the connection is closed with 1013. */
  messageBufferSize: number
  /** Bytes held for the connection (`bufferedAmount` and frames held during a replay) before it is closed with 1013. */
  maxBufferedBytes: number
  /** ms a client gets to answer the server's close before its connection is dropped. */
  closeTimeout: number
  rateLimit: number
  rateBurst: number
  /** One object for all connections: notified of overflows. */
  onOverflow: (connection: ClientConnection) => void
  /** Notified when a delivered frame reached the socket: ms since `deliver`, and since the sender published it. */
  onDelivered?: ((enqueueToWriteMs: number, publishToWriteMs: number | undefined) => void) | undefined
  /**
   * A live user message came with a seq above the next one: the ones between may still be on their way
   * from another node, or were never pushed live. Frames are held from now on; the handler sends the
   * user messages after `afterSeq` from the store and calls {@link ClientConnection.endReplay}.
   */
  onSeqGap: (connection: ClientConnection, afterSeq: number, beforeSeq: number) => void
}

interface HeldFrame {
  frame: Buffer
  seq: number | undefined
  /** The seq before this one in the user's stream; undefined: seq - 1. */
  prevSeq: number | undefined
  /** performance.now() when routed here; undefined for a delivery that is not timed. */
  enqueuedAt: number | undefined
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
  /** The turn ({@link currentTurn}) of the last write, and the last turn the socket was corked in. */
  #writeTurn = -1
  #corkTurn = -1
  #closed = false
  /** The close code the server sent (itself, or its WebSocket layer for a protocol error). */
  #sentCloseCode: number | undefined
  /** Drops the connection when the client does not answer the server's close in time. */
  #dropTimer: NodeJS.Timeout | undefined
  #reading = true
  /** What was logged about this connection already: one line per reason. */
  #reported: Set<string> | undefined
  /** Frames routed here while a replay (at set-up, or of a seq gap) runs; undefined otherwise. */
  #held: HeldFrame[] | undefined
  /** Bytes of the frames in {@link #held}. */
  #heldBytes = 0
  /**
   * The highest user seq written (replayed or live). User messages go out in ascending seq order, so
   * the highest seq a client received is always a safe `since`.
   */
  #userSeq = 0
  /** The seq of the live message whose gap the running replay fills. */
  #gapSeq: number | undefined
  #writableWaiters: Array<(open: boolean) => void> | undefined
  #replayWaiters: Array<() => void> | undefined
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

  /** The highest user seq this connection was sent: where a catch-up from the store starts. */
  get deliveredSeq (): number {
    return this.#userSeq
  }

  /** The client was told the user's stream ends at `seq` (its welcome): user messages up to it come from the replay. */
  deliveredUpTo (seq: number): void {
    this.#userSeq = Math.max(this.#userSeq, seq)
  }

  /** Whether live frames are held for a replay that runs now. */
  get replaying (): boolean {
    return this.#held !== undefined
  }

  /**
   * Delivers a routed frame; held while a replay runs. User messages (with `seq`) go out in ascending
   * seq order: one already sent is skipped, one above the next seq first has the gap read from the store.
   * `publishedAt` (epoch ms) is when the sending node published it; `timed` deliveries report their
   * latency to `onDelivered`. `prevSeq` is the seq before this one in the user's stream (the first
   * message of a new stream follows none): only seqs between it and the last one sent make a gap.
   */
  deliver (frame: Buffer, seq?: number, publishedAt?: number, timed = true, prevSeq?: number): boolean {
    const routed = { frame, seq, prevSeq, enqueuedAt: timed ? performance.now() : undefined, publishedAt }
    if (this.#held !== undefined) {
      // Held frames count against the same caps as the send buffer: a client that does not read during
      // its replay must not make the node hold more for it than for any other.
      if (this.#held.length >= this.#settings.messageBufferSize ||
          this.#socket.bufferedAmount + this.#heldBytes + frame.length > this.#settings.maxBufferedBytes) {
        this.#overflow()
        return false
      }
      this.#hold(routed)
      return true
    }
    return this.#route(routed, this.#userSeq)
  }

  /** Sends a routed frame; user messages up to `settledSeq` need no gap check (the store had nothing more). */
  #route (routed: HeldFrame, settledSeq: number): boolean {
    const { seq } = routed
    if (seq !== undefined) {
      if (seq <= this.#userSeq) return false
      if (seq > this.#userSeq + 1 && (routed.prevSeq ?? seq - 1) > this.#userSeq && seq > settledSeq) {
        // Another node's lower seq may still be in flight: sending this first would make the client's
        // highest seq skip it on a resume. The store has every seq below this one; read them first.
        this.#held = []
        this.#heldBytes = 0
        this.#hold(routed)
        this.#gapSeq = seq
        this.#settings.onSeqGap(this, this.#userSeq, seq)
        return true
      }
      this.#userSeq = seq
    }
    return this.#send(routed.frame, routed.enqueuedAt, routed.publishedAt)
  }

  #hold (routed: HeldFrame): void {
    (this.#held as HeldFrame[]).push(routed)
    this.#heldBytes += routed.frame.length
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
    const turn = currentTurn()
    if (this.#writeTurn === turn && this.#corkTurn !== turn) {
      const socket = this.#socket._socket
      if (socket !== undefined && socket !== null) {
        corkForThisTurn(socket)
        this.#corkTurn = turn
      }
    }
    this.#writeTurn = turn
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

  /**
   * Ends the replay that sent every user message up to `replayedSeq`; releases the frames held
   * meanwhile, user messages in seq order (from several nodes they may have arrived in any order).
   */
  endReplay (replayedSeq: number): void {
    const held = this.#held ?? []
    // The store was read after the message that opened the gap was stored: nothing else exists below it.
    const settledSeq = Math.max(replayedSeq, this.#gapSeq ?? 0)
    this.#held = undefined
    this.#heldBytes = 0
    this.#gapSeq = undefined
    this.#userSeq = Math.max(this.#userSeq, replayedSeq)
    const userFrames = held.filter((routed) => routed.seq !== undefined).sort((a, b) => (a.seq as number) - (b.seq as number))
    let nextUser = 0
    for (let i = 0; i < held.length; i++) {
      const routed = (held[i] as HeldFrame).seq === undefined ? held[i] as HeldFrame : userFrames[nextUser++] as HeldFrame
      // A gap began another replay: the rest waits for it.
      if (this.#held !== undefined) {
        this.#hold(routed)
        continue
      }
      this.#route(routed, settledSeq)
      if (this.#closed) return
    }
    if (this.#held === undefined) this.#wakeReplayWaiters()
  }

  /**
   * Resolves when no replay runs (at once if none does, or when the connection closes). Check
   * {@link replaying} again before starting one: a replay's end may open a seq gap and start another.
   */
  replayDone (): Promise<void> {
    if (this.#held === undefined) return Promise.resolve()
    return new Promise((resolve) => { (this.#replayWaiters ??= []).push(resolve) })
  }

  #wakeReplayWaiters (): void {
    const waiters = this.#replayWaiters ?? []
    this.#replayWaiters = undefined
    for (const wake of waiters) wake()
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

  /**
   * Starts the closing handshake with `code`: later writes are refused, frames from the client are no
   * longer handled, and a client that has not answered within `closeTimeout` is dropped.
   */
  close (code: number, reason: string): void {
    if (this.#closed) return
    this.#closing(code)
    this.#socket.close(code, reason)
  }

  /** The WebSocket layer closed the connection with `code` (a protocol error, 1002/1007/1009). */
  closedWith (code: number): void {
    if (this.#closed) return
    this.#closing(code)
  }

  /** The code to count for the connection's end: the one the server sent, else what the socket reported (1006: dropped). */
  closeCode (reported: number): number {
    return this.#sentCloseCode ?? reported
  }

  /** Stops reading from a connection the server is closing: whatever else it sends is not even read. */
  stopReading (): void {
    if (!this.#reading) return
    this.#reading = false
    this.#socket.pause()
  }

  /** True the first time it is asked about `reason` on this connection: log a reason once per connection. */
  firstReport (reason: string): boolean {
    this.#reported ??= new Set()
    if (this.#reported.has(reason)) return false
    this.#reported.add(reason)
    return true
  }

  /** Drops the TCP connection without a handshake (dead peers). */
  terminate (): void {
    this.markClosed()
    this.#socket.terminate()
  }

  /** The socket closed (either side): refuse writes, wake waiters, free what was held. */
  markClosed (): void {
    this.#closed = true
    this.#held = undefined
    this.#heldBytes = 0
    clearTimeout(this.#dropTimer)
    this.#dropTimer = undefined
    if (this.#writableWaiters !== undefined) this.#wakeWriters(false)
    this.#wakeReplayWaiters()
  }

  #closing (code: number): void {
    this.markClosed()
    this.#sentCloseCode = code
    this.#dropTimer = setTimeout(() => this.#socket.terminate(), this.#settings.closeTimeout).unref()
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
