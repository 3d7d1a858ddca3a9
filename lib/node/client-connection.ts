/**
 * One client connection: its bounded send path, the hold-back of live frames during a replay, seq
 * ordering of user messages, heartbeat state and its inbound rate limit.
 */
import { CloseCode } from '../protocol.js'
import { RateLimiter } from './rate-limiter.js'
import { afterWrite, beforeWrite, type Corkable } from './write-turns.js'

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
  /** Frames queued (written but not yet flushed to the kernel, or held during a replay) before the connection is closed with 1013. */
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
/** The limiter of every connection when `websocket.rate_limit` is 0: it never refuses, so it holds nothing of anyone's. */
const UNLIMITED = new RateLimiter(0, 1, 0)

/**
 * One client connection: a bounded send path that never blocks anyone else (overflow closes this
 * connection with 1013), replay gating for `since`, heartbeat state and the inbound rate limit.
 */
export class ClientConnection {
  readonly id: string
  readonly userId: string
  /** Rooms this connection is in; created on first join. */
  rooms: Set<string> | undefined
  /** Pings sent without an answer since the last sign of life. */
  missedPings = 0
  /** Made at the first frame the client sends (an idle connection needs none); shared when there is no limit. */
  #limiter: RateLimiter | undefined
  readonly #socket: WireSocket
  readonly #settings: ConnectionSettings
  #pending = 0
  /** The socket's writes in this turn ({@link beforeWrite}). */
  #writeTurn = -2
  #closed = false
  /**
   * Set once the server closes: the code it sent (itself, or its WebSocket layer for a protocol
   * error), and the timer that drops the connection when the client does not answer in time.
   */
  #serverClose: { code: number, dropTimer: NodeJS.Timeout | undefined } | undefined
  #reading = true
  /** What was logged about this connection already: one line per reason. */
  #reported: Set<string> | undefined
  /**
   * While a replay (at set-up, or of a seq gap) runs: the frames routed here meanwhile, their bytes,
   * and the seq of the live message whose gap it fills; undefined otherwise.
   */
  #replay: { held: HeldFrame[], bytes: number, gapSeq: number | undefined } | undefined
  /**
   * The highest user seq written (replayed or live). User messages go out in ascending seq order, so
   * the highest seq a client received is always a safe `since`.
   */
  #userSeq = 0
  /** Who waits for the send buffer to drain, and for the running replay to end; undefined while nobody does. */
  #waiters: { writable?: Array<(open: boolean) => void>, replay?: Array<() => void> } | undefined
  /** Counts a finished write: made for a burst of writes, dropped once none is pending (an idle connection keeps none). */
  #onWritten: (() => void) | undefined

  constructor (id: string, userId: string, socket: WireSocket, settings: ConnectionSettings) {
    this.id = id
    this.userId = userId
    this.#socket = socket
    this.#settings = settings
  }

  /** The inbound rate limit: a bucket made full at the first frame is what one made full at connect holds by then. */
  get limiter (): RateLimiter {
    this.#limiter ??= this.#settings.rateLimit === 0 ? UNLIMITED : new RateLimiter(this.#settings.rateLimit, this.#settings.rateBurst, Date.now())
    return this.#limiter
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
    return this.#replay !== undefined
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
    const replay = this.#replay
    if (replay !== undefined) {
      // Held frames count against the same caps as the send buffer: a client that does not read during
      // its replay must not make the node hold more for it than for any other.
      if (replay.held.length >= this.#settings.messageBufferSize ||
          this.#socket.bufferedAmount + replay.bytes + frame.length > this.#settings.maxBufferedBytes) {
        this.#overflow()
        return false
      }
      this.#hold(replay, routed)
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
        this.#replay = { held: [], bytes: 0, gapSeq: seq }
        this.#hold(this.#replay, routed)
        this.#settings.onSeqGap(this, this.#userSeq, seq)
        return true
      }
      this.#userSeq = seq
    }
    return this.#send(routed.frame, routed.enqueuedAt, routed.publishedAt)
  }

  #hold (replay: { held: HeldFrame[], bytes: number }, routed: HeldFrame): void {
    replay.held.push(routed)
    replay.bytes += routed.frame.length
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
    const socket = this.#socket._socket
    this.#writeTurn = beforeWrite(this.#writeTurn, socket)
    const onDelivered = this.#settings.onDelivered
    const onWritten = this.#writeCallback()
    this.#socket.send(frame, { binary: false }, enqueuedAt === undefined || onDelivered === undefined
      ? onWritten
      : (err) => {
          onWritten()
          if (err === undefined || err === null) onDelivered(performance.now() - enqueuedAt, publishedAt === undefined ? undefined : Math.max(0, Date.now() - publishedAt))
        })
    afterWrite(this.#writeTurn, socket)
    return true
  }

  #writeCallback (): () => void {
    this.#onWritten ??= () => {
      if (--this.#pending === 0) this.#onWritten = undefined
      if (this.#waiters?.writable !== undefined && this.#isBelowLowWater()) this.#wakeWriters(true)
    }
    return this.#onWritten
  }

  /** Holds routed frames until {@link endReplay}. */
  beginReplay (): void {
    this.#replay ??= { held: [], bytes: 0, gapSeq: undefined }
  }

  /**
   * Ends the replay that sent every user message up to `replayedSeq`; releases the frames held
   * meanwhile, user messages in seq order (from several nodes they may have arrived in any order).
   */
  endReplay (replayedSeq: number): void {
    const held = this.#replay?.held ?? []
    // The store was read after the message that opened the gap was stored: nothing else exists below it.
    const settledSeq = Math.max(replayedSeq, this.#replay?.gapSeq ?? 0)
    this.#replay = undefined
    this.#userSeq = Math.max(this.#userSeq, replayedSeq)
    const userFrames = held.filter((routed) => routed.seq !== undefined).sort((a, b) => (a.seq as number) - (b.seq as number))
    let nextUser = 0
    for (let i = 0; i < held.length; i++) {
      const routed = (held[i] as HeldFrame).seq === undefined ? held[i] as HeldFrame : userFrames[nextUser++] as HeldFrame
      // A gap began another replay: the rest waits for it.
      if (this.#replay !== undefined) {
        this.#hold(this.#replay, routed)
        continue
      }
      this.#route(routed, settledSeq)
      if (this.#closed) return
    }
    if (this.#replay === undefined) this.#wakeReplayWaiters()
  }

  /**
   * Resolves when no replay runs (at once if none does, or when the connection closes). Check
   * {@link replaying} again before starting one: a replay's end may open a seq gap and start another.
   */
  replayDone (): Promise<void> {
    if (this.#replay === undefined) return Promise.resolve()
    return new Promise((resolve) => { ((this.#waiters ??= {}).replay ??= []).push(resolve) })
  }

  #wakeReplayWaiters (): void {
    const waiters = this.#waiters?.replay ?? []
    if (this.#waiters !== undefined) this.#waiters.replay = undefined
    for (const wake of waiters) wake()
  }

  /** Resolves true when the send buffer is at most half full, false when the connection closed first. */
  whenWritable (): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false)
    if (this.#isBelowLowWater()) return Promise.resolve(true)
    return new Promise((resolve) => {
      ((this.#waiters ??= {}).writable ??= []).push(resolve)
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
    return this.#serverClose?.code ?? reported
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
    this.#replay = undefined
    if (this.#serverClose !== undefined) {
      clearTimeout(this.#serverClose.dropTimer)
      this.#serverClose.dropTimer = undefined
    }
    if (this.#waiters?.writable !== undefined) this.#wakeWriters(false)
    this.#wakeReplayWaiters()
  }

  #closing (code: number): void {
    this.markClosed()
    this.#serverClose = { code, dropTimer: setTimeout(() => this.#socket.terminate(), this.#settings.closeTimeout).unref() }
  }

  #isBelowLowWater (): boolean {
    return this.#pending <= this.#settings.messageBufferSize / 2 &&
      this.#socket.bufferedAmount <= this.#settings.maxBufferedBytes / 2
  }

  #wakeWriters (open: boolean): void {
    const waiters = this.#waiters?.writable ?? []
    if (this.#waiters !== undefined) this.#waiters.writable = undefined
    for (const wake of waiters) wake(open)
  }

  #overflow (): void {
    if (this.#closed) return
    this.#settings.onOverflow(this)
    this.close(CloseCode.TRY_AGAIN_LATER, 'send buffer overflow: reconnect with since')
  }
}
