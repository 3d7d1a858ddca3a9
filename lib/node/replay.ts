/**
 * Resumption: sends a connection the user messages it missed, from the store, at the pace the client
 * reads, before the live traffic held meanwhile. Also fills a seq gap in live traffic.
 */
import type { Logger } from '../logger.js'
import { CloseCode, encodeMessage } from '../protocol.js'
import type { MessageStore } from '../store/message-store.js'
import type { ClientConnection } from './client-connection.js'

/** Messages read from the store per round trip. */
const REPLAY_PAGE = 200

/**
 * Sends the user messages after `afterSeq` (default: after the user's acknowledged seq), page by page,
 * then releases live traffic held meanwhile (`endReplay`). For a seq gap in live traffic (a lower seq
 * from another node not here yet) only the seqs below `beforeSeq` are read; the live message itself
 * goes out from the held frame. A store that fails closes the connection with 1013: the client
 * reconnects with `since` and loses nothing.
 */
export async function replayMissed (connection: ClientConnection, store: MessageStore, log: Logger, afterSeq: number | undefined, beforeSeq = Infinity): Promise<void> {
  let cursor = 0
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
    log.warn({ err, connectionId: connection.id, code: CloseCode.TRY_AGAIN_LATER }, 'replay failed')
    connection.close(CloseCode.TRY_AGAIN_LATER, 'replay failed: reconnect with since')
    return
  }
  connection.endReplay(cursor)
}
