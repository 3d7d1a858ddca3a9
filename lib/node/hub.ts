/**
 * The local connections of one node, by id, by user and by room, and the fan-out that hands one frame
 * to each of them.
 */
import type { ClientConnection } from './client-connection.js'
import type { Logger } from '../logger.js'
import { Multimap } from '../multimap.js'
import type { Target } from '../protocol.js'

/**
 * The node's local connections, by id, by user (every device, oldest first) and by room.
 * Fan-out turns a frame into bytes once and hands the same buffer to every recipient.
 */
export class LocalHub {
  readonly #connections = new Map<string, ClientConnection>()
  readonly #byUser = new Multimap<string, ClientConnection>()
  readonly #byRoom = new Map<string, Set<ClientConnection>>()

  get size (): number {
    return this.#connections.size
  }

  /** Local rooms with at least one member. */
  get roomCount (): number {
    return this.#byRoom.size
  }

  [Symbol.iterator] (): IterableIterator<ClientConnection> {
    return this.#connections.values()
  }

  get (connectionId: string): ClientConnection | undefined {
    return this.#connections.get(connectionId)
  }

  /** The user's local connections, oldest first. */
  user (userId: string): Iterable<ClientConnection> {
    return this.#byUser.values(userId)
  }

  add (connection: ClientConnection): void {
    this.#connections.set(connection.id, connection)
    this.#byUser.add(connection.userId, connection)
  }

  /** Removes the connection; returns the rooms that have no local member left, undefined if it was not here. */
  remove (connection: ClientConnection): string[] | undefined {
    if (this.#connections.get(connection.id) !== connection) return undefined
    this.#connections.delete(connection.id)
    this.#byUser.delete(connection.userId, connection)
    const emptied: string[] = []
    for (const room of connection.rooms ?? []) {
      if (this.leave(connection, room)) emptied.push(room)
    }
    return emptied
  }

  /** Adds the connection to the room; returns true when the room had no local member before. */
  join (connection: ClientConnection, room: string): boolean {
    let members = this.#byRoom.get(room)
    const first = members === undefined
    if (members === undefined) this.#byRoom.set(room, members = new Set())
    members.add(connection)
    ;(connection.rooms ??= new Set()).add(room)
    return first
  }

  /** Removes the connection from the room; returns true when the room has no local member left. */
  leave (connection: ClientConnection, room: string): boolean {
    connection.rooms?.delete(room)
    const members = this.#byRoom.get(room)
    if (members?.delete(connection) !== true) return false
    if (members.size > 0) return false
    this.#byRoom.delete(room)
    return true
  }

  /** The heartbeat: pings every connection, and drops those that missed two pings. */
  beat (log: Logger): void {
    for (const connection of this.#connections.values()) {
      if (connection.missedPings >= 2) {
        log.debug({ connectionId: connection.id, userId: connection.userId }, 'heartbeat missed twice: terminating')
        connection.terminate()
      } else {
        connection.ping()
      }
    }
  }

  /** Writes the frame to every local connection the target names; returns how many took it. */
  deliver (target: Target, frame: string, seq?: number, publishedAt?: number, prevSeq?: number): number {
    const recipients = 'user' in target
      ? this.#byUser.raw(target.user)
      : 'room' in target
        ? this.#byRoom.get(target.room)
        : 'connection' in target
          ? this.#connections.get(target.connection)
          : this.#connections.values()
    if (recipients === undefined) return 0
    const bytes = Buffer.from(frame)
    if (!(Symbol.iterator in recipients)) return recipients.deliver(bytes, seq, publishedAt, true, prevSeq) ? 1 : 0
    let delivered = 0
    for (const connection of recipients) {
      // Timing every recipient of a large fan-out costs more than the fan-out itself: the first few represent it.
      if (connection.deliver(bytes, seq, publishedAt, delivered < TIMED_RECIPIENTS, prevSeq)) delivered++
    }
    return delivered
  }
}

/** Recipients of one fan-out whose delivery latency is measured (docs/metrics.md). */
export const TIMED_RECIPIENTS = 8
