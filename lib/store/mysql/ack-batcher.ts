/**
 * Acks on their way to `wsc_inboxes.acked_seq`: coalesced per user (the highest seq wins) and written
 * as one UPDATE for every user waiting, one UPDATE at a time.
 */
import type { MySqlConnections } from './mysql-connections.js'
import { Sql } from './schema.js'
import { SerialWriter } from './serial-writer.js'

interface PendingAck {
  seq: number
  waiters: Array<{ resolve: () => void, reject: (err: Error) => void }>
}

/** Batches the store's acks. */
export class AckBatcher {
  readonly #connections: MySqlConnections
  readonly #writer = new SerialWriter(() => this.#acks.size === 0 ? undefined : this.#write(this.#takeAll()))
  #acks = new Map<string, PendingAck>()

  constructor (connections: MySqlConnections) {
    this.#connections = connections
  }

  /** Resolves once the UPDATE carrying this ack (or a higher one of the same user) succeeded. */
  async ack (userId: string, seq: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const pending = this.#acks.get(userId)
      if (pending === undefined) this.#acks.set(userId, { seq, waiters: [{ resolve, reject }] })
      else {
        pending.seq = Math.max(pending.seq, seq)
        pending.waiters.push({ resolve, reject })
      }
      this.#writer.soon()
    })
  }

  /** Writes every waiting ack. */
  async flush (): Promise<void> {
    await this.#writer.flush()
  }

  #takeAll (): Map<string, PendingAck> {
    const acks = this.#acks
    this.#acks = new Map()
    return acks
  }

  async #write (acks: Map<string, PendingAck>): Promise<void> {
    const users = [...acks.keys()]
    try {
      await this.#connections.query(Sql.ack(users.length), [...users.flatMap((user) => [user, acks.get(user)?.seq]), ...users])
      for (const ack of acks.values()) for (const waiter of ack.waiters) waiter.resolve()
    } catch (err) {
      for (const ack of acks.values()) for (const waiter of ack.waiters) waiter.reject(err as Error)
    }
  }
}
