/**
 * The `MessageStore` seam (memory | Redis | MySQL | Redis window over MySQL): the per-user seq and inbox
 * behind `sendToUser`, `since` replay and acks, with the types every store and its callers share.
 */
import type { Message } from '../protocol.js'

/** A user-addressed message with its per-user sequence number. */
export interface StoredMessage extends Message {
  seq: number
}

/** What a store promises once `append` resolves; docs/delivery.md explains each. */
export type Durability = 'memory' | 'redis' | 'mysql'

/** Whether the store's backends can be reached, for readiness and metrics. */
export interface StoreStatus {
  up: boolean
  detail: string
  /** Round trip of the last health probe in ms, when the store probes. */
  latencyMs?: number
}

/** Per-user sequence numbers and the user's inbox, for `since` replay and offline delivery. */
export interface MessageStore {
  readonly durability: Durability
  /** Reachability of the backends; absent on stores that cannot fail (memory). */
  status? (): StoreStatus
  /** Gives the message the user's next `seq` (strictly increasing, never reused) and keeps it. */
  append (userId: string, message: Omit<Message, 'seq'>): Promise<StoredMessage>
  /** Messages with `seq > afterSeq`, ascending, at most `limit`. */
  since (userId: string, afterSeq: number, limit: number): Promise<StoredMessage[]>
  /** The user's latest `seq`, 0 when none was given. */
  latestSeq (userId: string): Promise<number>
  /** The highest `seq` the user acknowledged, 0 when none. */
  ackedSeq (userId: string): Promise<number>
  /** Records that the user processed everything up to `seq` (never moves backwards). */
  ack (userId: string, seq: number): Promise<void>
  close (): Promise<void>
}
