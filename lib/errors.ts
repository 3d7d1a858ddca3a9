/** Every coded error of the library (`WSC_ERR_*`). */
import createError from '@fastify/error'

/** Start-up stopped by a bad configuration value; the message names the key, the value and what is allowed. */
export const ConfigError = createError('WSC_ERR_CONFIG', '%s', 500)

/** A plugin option is missing or invalid. */
export const OptionError = createError('WSC_ERR_OPTION', 'option %s: %s', 500, TypeError)

const Unauthorized = createError('WSC_ERR_UNAUTHORIZED', '%s', 401)
const Forbidden = createError('WSC_ERR_FORBIDDEN', '%s', 403)

/** `authenticate` may throw this to refuse an upgrade with HTTP 401; the message goes to the client. */
export class UnauthorizedError extends Unauthorized {
  constructor (message = 'unauthorized') {
    super(message)
  }
}

/** `authenticate` may throw this to refuse an upgrade with HTTP 403; the message goes to the client. */
export class ForbiddenError extends Forbidden {
  constructor (message = 'forbidden') {
    super(message)
  }
}

/** A dependency (Redis, MySQL) cannot be reached: the send was not accepted; retry later. */
export const UnavailableError = createError('WSC_ERR_UNAVAILABLE', 'unavailable: %s', 503)

/** A message payload cannot be sent: not JSON-serializable or larger than the configured maximum. */
export const PayloadError = createError('WSC_ERR_PAYLOAD', 'payload refused: %s', 400, TypeError)

/** A send target (user id, room name, connection id) is malformed. */
export const TargetError = createError('WSC_ERR_TARGET', 'bad target: %s', 400, TypeError)

const StoredNotDelivered = createError('WSC_ERR_STORED_NOT_DELIVERED', 'stored as seq %s but not pushed to the user\'s connections: %s', 503)

/**
 * A user message was stored (it has its seq and is delivered when the user's connections catch up or
 * resume) but could not be pushed live now. Retrying with the same `id` returns it without a second copy.
 */
export class StoredNotDeliveredError extends StoredNotDelivered {
  readonly id: string
  readonly seq: number
  constructor (id: string, seq: number, cause: unknown) {
    super(seq, errorMessage(cause), { cause })
    this.id = id
    this.seq = seq
  }
}

/** Start-up found another live process registered under this node's id. */
export const NodeIdInUseError = createError('WSC_ERR_NODE_ID_IN_USE', '%s', 500)

/** The node is shutting down and no longer accepts sends. */
export const ClosedError = createError('WSC_ERR_CLOSED', 'closed: %s', 503)

/** `err` as a `WSC_ERR_UNAVAILABLE` that names the dependency (`Redis: …`), with `err` as its cause; one already coded passes through. */
export function asUnavailable (dependency: string, err: unknown): Error {
  if (err instanceof UnavailableError) return err
  return new UnavailableError(`${dependency}: ${errorMessage(err)}`, { cause: err })
}

/** What an error says: its message, or the thrown value itself as text. */
export function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
