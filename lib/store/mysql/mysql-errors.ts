/**
 * How the MySQL store reads a mysql2 error: whether the connection is gone, whether a transaction lost
 * a race that running it again can win, and one line that says what happened.
 */

const ER_DUP_ENTRY = 1062
const ER_LOCK_WAIT_TIMEOUT = 1205
const ER_LOCK_DEADLOCK = 1213

const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ER_SERVER_SHUTDOWN', 'ER_CON_COUNT_ERROR',
  'ER_SERVER_GONE_ERROR', 'ER_SERVER_LOST'
])

interface MySqlError { code?: string, errno?: number, fatal?: boolean, message?: string }

/** The connection cannot be used any more (network, server gone, statement timeout): destroy it, do not reuse it. */
export function isConnectionError (err: unknown): boolean {
  const e = err as MySqlError
  return e.fatal === true || (e.code !== undefined && CONNECTION_ERRORS.has(e.code))
}

/** A deadlock, a lock wait timeout or a duplicate key: the transaction lost a race and may succeed when run again. */
export function isConflict (err: unknown): boolean {
  const errno = (err as MySqlError).errno
  return errno === ER_LOCK_DEADLOCK || errno === ER_LOCK_WAIT_TIMEOUT || errno === ER_DUP_ENTRY
}

/** The error's message, led by its code when the message does not name it. */
export function describeMySqlError (err: unknown): string {
  const e = err as MySqlError
  const message = e.message !== undefined && e.message !== '' ? e.message : String(err)
  return e.code !== undefined && !message.includes(e.code) ? `${e.code} ${message}` : message
}
