/**
 * The `MessageStore` seam (memory | Redis | MySQL | Redis window over MySQL): the per-user seq and inbox
 * behind `sendToUser`, `since` replay and acks, with the types every store and its callers share.
 */
import type { Message } from '../protocol.js'

/** A user-addressed message with its per-user sequence number. */
export interface StoredMessage extends Message {
  seq: number
  /** From `append`: the seq before this one in the user's stream when it is not `seq - 1` (the first message of a new stream follows none: 0). */
  prevSeq?: number
}

/** What a store promises once `append` resolves; docs/delivery.md explains each. */
export type Durability = 'memory' | 'redis' | 'mysql'

export interface AppendOptions {
  /** The id was chosen by the caller: a retry with it returns the message already stored. */
  idempotent?: boolean
}

/** Whether the store's backends can be reached, for readiness and metrics. */
export interface StoreStatus {
  up: boolean
  detail: string
  /** Round trip of the last health probe in ms, when the store probes. */
  latencyMs?: number
}

/** Where a user's stream stands: what a connection's `welcome` tells the client, and what resumption checks. */
export interface StreamHead {
  /**
   * Names the store's history: it changes when the store lost it (the embedded store restarted, Redis
   * without persistence restarted, another MySQL database). A client whose `since` came from another
   * epoch cannot resume after it.
   */
  epoch: string
  /** The user's latest `seq`, 0 when none was given. */
  latestSeq: number
  /** The oldest `seq` still held for the user, 0 when none is held. */
  oldestSeq: number
}

/** Per-user sequence numbers and the user's inbox, for `since` replay and offline delivery. */
export interface MessageStore {
  readonly durability: Durability
  /** Reachability of the backends; absent on stores that cannot fail (memory). */
  status? (): StoreStatus
  /**
   * Gives the message the user's next `seq` (strictly increasing, never reused) and keeps it. With
   * `idempotent`, a message whose id the user's stream already holds is not stored again: the stored
   * one's seq comes back.
   */
  append (userId: string, message: Omit<Message, 'seq'>, options?: AppendOptions): Promise<StoredMessage>
  /** Messages with `seq > afterSeq`, ascending, at most `limit`. */
  since (userId: string, afterSeq: number, limit: number): Promise<StoredMessage[]>
  /** The user's stream: its epoch, latest and oldest held `seq`. Creates nothing for a user without one. */
  head (userId: string): Promise<StreamHead>
  /** The highest `seq` the user acknowledged, 0 when none. */
  ackedSeq (userId: string): Promise<number>
  /** Records that the user processed everything up to `seq` (never moves backwards). */
  ack (userId: string, seq: number): Promise<void>
  close (): Promise<void>
}
