import type { DropReason } from './client-connection.js'
import type { ClientFrame, Target } from '../protocol.js'

/** The type of a client frame as counted: a known frame type, or `invalid` for one that did not parse. */
export type FrameKind = ClientFrame['type'] | 'invalid'

/** Where a message goes, without the name: bounded, so it can be a metric label. */
export type TargetKind = 'user' | 'room' | 'connection' | 'broadcast'

/**
 * What a node reports as it works, for metrics. Called on hot paths: implementations only count.
 * `plugins/metrics` supplies the Prometheus one; the default does nothing.
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

/** The default observer: counts nothing. */
export const NOOP_OBSERVER: WscObserver = Object.freeze({
  connectionOpened () {},
  connectionClosed () {},
  frameIn () {},
  messageSent () {},
  messagesOut () {},
  delivered () {},
  dropped () {}
})

export function targetKind (target: Target): TargetKind {
  if ('user' in target) return 'user'
  if ('room' in target) return 'room'
  if ('connection' in target) return 'connection'
  return 'broadcast'
}
