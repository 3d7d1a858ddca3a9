/** What a node reports as it works (for metrics), and the list of those who listen. */
import type { DropReason } from './client-connection.js'
import type { ClientFrame, Target } from '../protocol.js'

/** The type of a client frame as counted: a known frame type, or `invalid` for one that did not parse. */
export type FrameKind = ClientFrame['type'] | 'invalid'

/** Where a message goes, without the name: bounded, so it can be a metric label. */
export type TargetKind = 'user' | 'room' | 'connection' | 'broadcast'

/**
 * What a node reports as it works, for metrics. Called on hot paths: implementations only count.
 * `plugins/metrics` adds the Prometheus one; `app.wsc.observe()` adds more.
 */
export interface WscObserver {
  /** A socket was upgraded and registered with the node. */
  connectionOpened (): void
  /** A connection was released; `code` is the WebSocket close code. */
  connectionClosed (code: number): void
  /** A text frame came in from a client. */
  frameIn (type: FrameKind): void
  /** A send (server API or client publish) on this node resolved. */
  messageSent (target: TargetKind): void
  /** A routed message was handed to `count` local connections. */
  messagesOut (target: TargetKind, count: number): void
  /**
   * A delivered message reached the socket: ms since it was handed to the connection, and ms since
   * the sending node published it (undefined when the routed event did not carry the time).
   */
  delivered (enqueueToWriteMs: number, publishToWriteMs: number | undefined): void
  /** A frame was not delivered or not accepted. */
  dropped (reason: DropReason): void
}

/** Every observer of a node (metrics, and any the app adds), called in turn; one that throws is logged and the others still run. */
export class ObserverList implements WscObserver {
  #observers: readonly WscObserver[] = []
  readonly #onError: (err: unknown) => void
  readonly #onChange: () => void

  /** @param onChange called after an observer is added or removed */
  constructor (onError: (err: unknown) => void, onChange: () => void = () => {}) {
    this.#onError = onError
    this.#onChange = onChange
  }

  /** Whether any observer times deliveries (timing costs a clock read per frame). */
  get timesDeliveries (): boolean {
    return this.#observers.length > 0
  }

  /** Adds an observer; the returned function removes it. */
  add (observer: WscObserver): () => void {
    this.#observers = [...this.#observers, observer]
    this.#onChange()
    return () => {
      this.#observers = this.#observers.filter((other) => other !== observer)
      this.#onChange()
    }
  }

  #each (call: (observer: WscObserver) => void): void {
    for (const observer of this.#observers) {
      try {
        call(observer)
      } catch (err) {
        this.#onError(err)
      }
    }
  }

  connectionOpened (): void { this.#each((o) => o.connectionOpened()) }
  connectionClosed (code: number): void { this.#each((o) => o.connectionClosed(code)) }
  frameIn (type: FrameKind): void { this.#each((o) => o.frameIn(type)) }
  messageSent (target: TargetKind): void { this.#each((o) => o.messageSent(target)) }
  messagesOut (target: TargetKind, count: number): void { this.#each((o) => o.messagesOut(target, count)) }
  delivered (enqueueToWriteMs: number, publishToWriteMs: number | undefined): void { this.#each((o) => o.delivered(enqueueToWriteMs, publishToWriteMs)) }
  dropped (reason: DropReason): void { this.#each((o) => o.dropped(reason)) }
}

export function targetKind (target: Target): TargetKind {
  if ('user' in target) return 'user'
  if ('room' in target) return 'room'
  if ('connection' in target) return 'connection'
  return 'broadcast'
}
