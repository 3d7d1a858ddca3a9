/**
 * The transaction that stores one batch: lock the users' counter rows in `wsc_inboxes`, give each
 * message its user's next seq, move the counters, insert every message in one multi-row INSERT, commit.
 * The counter row stays locked until COMMIT, so a user's messages commit in seq order and a reader
 * never sees a gap that fills later.
 */
import type { PoolConnection } from 'mysql2/promise'
import type { StoredMessage } from '../message-store.js'
import type { PendingAppend } from './group-commit-queue.js'
import { columnText, type MySqlConnections, type Row } from './mysql-connections.js'
import { isConnectionError } from './mysql-errors.js'
import { Sql } from './schema.js'

/** An append and the message it became, with its seq. */
export interface NumberedAppend {
  pending: PendingAppend
  stored: StoredMessage
}

/**
 * Numbers and inserts `pending` in one transaction, on one pooled connection. With `recheck` (a retry)
 * the stored messages' highest seq is checked for every user, not only for users without a counter
 * row, so a counter that fell behind its messages (restored separately) cannot fail twice.
 *
 * @param floors the lowest seq each user's next message may take beyond MySQL's own counter
 */
export async function numberAndInsert (connections: MySqlConnections, pending: PendingAppend[],
  floors: ReadonlyMap<string, number> | undefined, recheck: boolean): Promise<NumberedAppend[]> {
  const users = [...new Set(pending.map((p) => p.userId))]
  return connections.withConnection(async (conn, discard) => {
    await connections.run(conn, Sql.begin)
    try {
      const { latest, messages } = await number(connections, conn, pending, users, floors, recheck)
      await connections.run(conn, Sql.upsertInboxSeqs(users.length), users.flatMap((user) => [user, latest.get(user)]))
      await connections.run(conn, Sql.insertMessages(messages.length),
        messages.flatMap(({ pending: p, stored }) => [p.userId, stored.seq, stored.id, stored.from, stored.ts, stored.dataJson]))
      await connections.run(conn, Sql.commit)
      return messages
    } catch (err) {
      // A connection whose transaction may still be open must not go back to the pool.
      if (!isConnectionError(err)) await connections.run(conn, Sql.rollback).catch(discard)
      throw err
    }
  })
}

/** Locks the users' counter rows and gives each pending message its seq. */
async function number (connections: MySqlConnections, conn: PoolConnection, pending: PendingAppend[], users: string[],
  floors: ReadonlyMap<string, number> | undefined, recheck: boolean): Promise<{ latest: Map<string, number>, messages: NumberedAppend[] }> {
  const latest = new Map<string, number>()
  for (const row of await connections.run<Row[]>(conn, Sql.lockInboxes(users.length), users)) latest.set(columnText(row.user_id), Number(row.seq))
  const unsure = recheck ? users : users.filter((user) => !latest.has(user))
  if (unsure.length > 0) {
    // A user without an inbox row may still have messages (the row was lost): continue after them.
    for (const row of await connections.run<Row[]>(conn, Sql.maxStoredSeq(unsure.length), unsure)) {
      const user = columnText(row.user_id)
      latest.set(user, Math.max(latest.get(user) ?? 0, Number(row.seq)))
    }
  }
  for (const user of users) latest.set(user, Math.max(latest.get(user) ?? 0, floors?.get(user) ?? 0))
  const messages = pending.map((p) => {
    const seq = (latest.get(p.userId) ?? 0) + 1
    latest.set(p.userId, seq)
    return { pending: p, stored: { ...p.message, seq } }
  })
  return { latest, messages }
}
