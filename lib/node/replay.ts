/**
 * Resumption: sends a connection the user messages it missed, from the store, at the pace the client
 * reads, before the live traffic held meanwhile. Also fills a seq gap in live traffic, and catches
 * connections up after a gap in routing.
 */
import type { Logger } from '../logger.js'
import { CloseCode, encodeMessage } from '../protocol.js'
import type { MessageStore, StreamHead } from '../store/message-store.js'
import type { ClientConnection } from './client-connection.js'

/** Where a client resumes from: the `since` and `epoch` of its upgrade. */
export interface Resume {
  since?: number | undefined
  epoch?: string | undefined
}

/** An epoch as the stores make them (letters, digits, `-`, `_`), bounded. */
const EPOCH = /^[A-Za-z0-9_-]{1,64}$/

/** The `since` and `epoch` of an upgrade's query, or why they are not valid (the 400's message). */
export function parseResume (query: Record<string, unknown> | undefined): Resume | string {
  const sinceText = query?.since
  let since: number | undefined
  if (sinceText !== undefined) {
    since = typeof sinceText === 'string' && /^\d{1,15}$/.test(sinceText) ? Number(sinceText) : NaN
    if (!Number.isSafeInteger(since)) return 'since must be a non-negative integer'
  }
  const epoch = query?.epoch
  if (epoch !== undefined && (typeof epoch !== 'string' || !EPOCH.test(epoch))) return 'epoch must be the epoch of a welcome frame'
  return { since, epoch }
}

/** What a connection's replay starts after, and whether that is where the client asked. */
export interface ResumePlan {
  /** Replay the messages after this seq; undefined: after the user's acknowledged seq. */
  afterSeq: number | undefined
  /** False when the store cannot continue right after the client's `since`: it replays all it holds. */
  recovered: boolean
}

/**
 * Decides the replay: after the client's `since`, unless its history is not the store's — another
 * epoch, a `since` beyond the latest seq (the store lost messages the client saw) or before the oldest
 * one held (messages in between are gone); then everything held, and `recovered: false` says so.
 */
export function planResume (head: StreamHead, resume: Resume): ResumePlan {
  const { since, epoch } = resume
  if (since === undefined) return { afterSeq: undefined, recovered: true }
  const otherHistory = (epoch !== undefined && epoch !== head.epoch) || since > head.latestSeq || (head.oldestSeq > 0 && since < head.oldestSeq - 1)
  return otherHistory ? { afterSeq: 0, recovered: false } : { afterSeq: since, recovered: true }
}

/** Messages read from the store per round trip. */
const REPLAY_PAGE = 200

/**
 * Sends the user messages after `afterSeq` (default: after the user's acknowledged seq), page by page,
 * then releases live traffic held meanwhile (`endReplay`). For a seq gap in live traffic (a lower seq
 * from another node not here yet) only the seqs below `beforeSeq` are read; the live message itself
 * goes out from the held frame. A store that fails closes the connection with 1013 (the client
 * reconnects with `since` and loses nothing), or, with `keepOpen` (a catch-up, which the next repair
 * of routing runs again), releases the live traffic and rejects.
 */
export async function replayMissed (connection: ClientConnection, store: MessageStore, log: Logger, afterSeq: number | undefined, beforeSeq = Infinity, keepOpen = false): Promise<void> {
  let cursor = afterSeq ?? 0
  try {
    cursor = afterSeq ?? await store.ackedSeq(connection.userId)
    for (;;) {
      const page = await store.since(connection.userId, cursor, REPLAY_PAGE)
      let reached = false
      for (const message of page) {
        if (message.seq >= beforeSeq) {
          reached = true
          break
        }
        if (!connection.write(Buffer.from(encodeMessage(message)))) return
        cursor = message.seq
      }
      if (reached || page.length < REPLAY_PAGE) break
      if (!await connection.whenWritable()) return
    }
  } catch (err) {
    if (keepOpen) {
      connection.endReplay(cursor)
      throw err
    }
    log.warn({ err, connectionId: connection.id, code: CloseCode.TRY_AGAIN_LATER }, 'replay failed')
    connection.close(CloseCode.TRY_AGAIN_LATER, 'replay failed: reconnect with since')
    return
  }
  connection.endReplay(cursor)
}

/** Connections caught up from the store at once after a routing gap. */
const CATCH_UP_CONCURRENCY = 32

/**
 * After a gap in routing (Redis restarted, a failover, a lost subscription), sends each connection the
 * user messages stored above what it was sent, a few connections at a time; live traffic is held
 * meanwhile and released in seq order without duplicates. A store that is not back yet leaves the
 * connections open: the repair of routing that follows runs the catch-up again.
 */
export async function catchUp (connections: ClientConnection[], store: MessageStore, log: Logger): Promise<void> {
  let failed = 0
  let cause: unknown
  for (let i = 0; i < connections.length; i += CATCH_UP_CONCURRENCY) {
    await Promise.all(connections.slice(i, i + CATCH_UP_CONCURRENCY).map(async (connection) => {
      // One replay at a time per connection: a running one may have read the store before the gap closed.
      while (connection.replaying) await connection.replayDone()
      if (!connection.isOpen) return
      connection.beginReplay()
      try {
        await replayMissed(connection, store, log, connection.deliveredSeq, Infinity, true)
      } catch (err) {
        failed++
        cause = err
      }
    }))
  }
  if (failed > 0) log.warn({ err: cause, connections: failed }, 'catch-up could not read the store; it runs again when routing is repaired')
}
