/**
 * Wire protocol v1 (docs/protocol.md): every frame type, error code and close code, the bounded parser
 * for client frames and the encoders for server frames. Nothing else in the code spells a frame.
 */

/** Codes carried by `error` frames. */
export const ErrorCode = {
  BAD_REQUEST: 'BAD_REQUEST',
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  FORBIDDEN: 'FORBIDDEN',
  RATE_LIMITED: 'RATE_LIMITED',
  NOT_FOUND: 'NOT_FOUND',
  UNAVAILABLE: 'UNAVAILABLE',
  INTERNAL: 'INTERNAL'
} as const
// eslint-disable-next-line @typescript-eslint/no-redeclare -- a value and its type share the name on purpose
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode]

/** WebSocket close codes the server uses. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  /** Sent by the WebSocket layer: bad opcode, unmasked frame, fragmented control frame, bad close code. */
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  /** Sent by the WebSocket layer: a text frame that is not valid UTF-8. */
  INVALID_DATA: 1007,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  RESTART: 1012,
  TRY_AGAIN_LATER: 1013
} as const

/** Longest user id, room name or connection id accepted on the wire or by the API. */
export const MAX_NAME_LENGTH = 256
/** Longest client frame `id` echoed back in `ack`/`error`. */
export const MAX_FRAME_ID_LENGTH = 128

/** Where a message goes. */
export type Target =
  | { user: string }
  | { room: string }
  | { connection: string }
  | { broadcast: true }

export type FrameId = string | number

export type ClientFrame =
  | { type: 'ping', id?: FrameId }
  | { type: 'join', room: string, id?: FrameId }
  | { type: 'leave', room: string, id?: FrameId }
  | { type: 'publish', to: { user: string } | { room: string }, data: unknown, id?: FrameId }
  | { type: 'ack', seq: number, id?: FrameId }

export type ParseResult =
  | { ok: true, frame: ClientFrame }
  | { ok: false, code: ErrorCode, message: string, id?: FrameId }

/** A message as delivered to clients in a `message` frame, its payload kept as JSON text. */
export interface Message {
  id: string
  /** Present only on user-addressed messages. */
  seq?: number
  from: string | null
  to: Target
  /** The payload, already serialized and checked by {@link serializeData}. */
  dataJson: string
  ts: number
}

/**
 * A user id, room name or connection id: 1–256 UTF-16 code units and well-formed (no lone surrogate,
 * which Redis channels and MySQL would turn into U+FFFD, making two names one).
 */
export function isValidName (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_NAME_LENGTH && isWellFormed(value)
}

/** `String.prototype.isWellFormed` (Node 20; not in the ES2023 lib types). */
function isWellFormed (value: string): boolean {
  return (value as string & { isWellFormed: () => boolean }).isWellFormed()
}

function readFrameId (value: unknown): FrameId | undefined {
  if (typeof value === 'string' && value.length <= MAX_FRAME_ID_LENGTH) return value
  if (typeof value === 'number' && Number.isFinite(value)) return value
  return undefined
}

function bad (message: string, id?: FrameId): ParseResult {
  return id === undefined
    ? { ok: false, code: ErrorCode.BAD_REQUEST, message }
    : { ok: false, code: ErrorCode.BAD_REQUEST, message, id }
}

/** What a name (user id, room, connection id) in `field` must be. */
function nameRule (field: string): string {
  return `${field} must be a well-formed string of 1 to ${MAX_NAME_LENGTH} characters`
}

/** Why `value` cannot be the name `field` holds; undefined when it can. */
export function nameProblem (field: string, value: unknown): string | undefined {
  return isValidName(value) ? undefined : nameRule(field)
}

/** Checks a publish/send target; returns a reason when it is not one. */
export function describeBadTarget (to: unknown, allowed: ReadonlyArray<keyof Target | string>): string | undefined {
  if (to === null || typeof to !== 'object' || Array.isArray(to)) return 'to must be an object'
  const keys = Object.keys(to).filter((k) => allowed.includes(k))
  if (keys.length !== 1) return `to must have exactly one of ${allowed.join(', ')}`
  const key = keys[0] as string
  const value = (to as Record<string, unknown>)[key]
  if (key === 'broadcast') return value === true ? undefined : 'to.broadcast must be true'
  return nameProblem(`to.${key}`, value)
}

/**
 * Parses one client text frame. Never throws: bad input gives `{ ok: false }` with the protocol error
 * code, and echoes the frame `id` when one could be read. The caller bounds the size (maxPayload).
 */
export function parseClientFrame (text: string): ParseResult {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return bad('frame is not valid JSON')
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return bad('frame must be a JSON object')
  const frame = value as Record<string, unknown>
  const id = readFrameId(frame.id)
  if (frame.id !== undefined && id === undefined) {
    return bad(`id must be a string of at most ${MAX_FRAME_ID_LENGTH} characters or a number`)
  }
  const withId = <T extends object>(f: T): T => (id === undefined ? f : { ...f, id })
  switch (frame.type) {
    case 'ping':
      return { ok: true, frame: withId({ type: 'ping' as const }) }
    case 'join':
    case 'leave':
      if (!isValidName(frame.room)) return bad(nameRule('room'), id)
      return { ok: true, frame: withId({ type: frame.type, room: frame.room }) }
    case 'publish': {
      const reason = describeBadTarget(frame.to, ['user', 'room'])
      if (reason !== undefined) return bad(reason, id)
      if (!('data' in frame)) return bad('publish needs data', id)
      const to = frame.to as Record<string, string>
      const target = to.user !== undefined ? { user: to.user } : { room: to.room as string }
      return { ok: true, frame: withId({ type: 'publish' as const, to: target, data: frame.data }) }
    }
    case 'ack':
      if (typeof frame.seq !== 'number' || !Number.isSafeInteger(frame.seq) || frame.seq < 0) {
        return bad('seq must be a non-negative integer', id)
      }
      return { ok: true, frame: withId({ type: 'ack' as const, seq: frame.seq }) }
    case undefined:
      return bad('frame needs a type', id)
    default: {
      const type = typeof frame.type === 'string' ? frame.type.slice(0, 64) : typeof frame.type
      const message = `unknown frame type ${JSON.stringify(type)}`
      return id === undefined
        ? { ok: false, code: ErrorCode.UNKNOWN_TYPE, message }
        : { ok: false, code: ErrorCode.UNKNOWN_TYPE, message, id }
    }
  }
}

export interface WelcomeFrame {
  nodeId: string
  connectionId: string
  userId: string
  heartbeatMs: number
  /** The user's latest seq. */
  seq: number
  /** Names the store's history of the user; a client resumes with it (`epoch=`). */
  epoch: string
  /** False when the replay could not start right after the client's `since` (another epoch, or older than held). */
  recovered: boolean
  /** The oldest seq still held; 0 when none. */
  oldestSeq: number
}

export function encodeWelcome (w: WelcomeFrame): string {
  return JSON.stringify({ type: 'welcome', nodeId: w.nodeId, connectionId: w.connectionId, userId: w.userId, heartbeatMs: w.heartbeatMs, seq: w.seq, epoch: w.epoch, recovered: w.recovered, oldestSeq: w.oldestSeq })
}

/**
 * Serializes a message frame around its already-serialized payload (no second pass over `data`). The
 * Redis script that numbers and routes user messages (`SEND_TO_USERS` in redis/inbox-scripts.ts) writes
 * the same bytes around `messageFromTo`.
 */
export function encodeMessage (m: Message): string {
  return `{"type":"message","id":${JSON.stringify(m.id)}${m.seq === undefined ? '' : `,"seq":${m.seq}`}${messageFromTo(m.from, JSON.stringify(m.to))}${m.dataJson},"ts":${m.ts}}`
}

/** The part of a `message` frame between its seq and its payload: `,"from":…,"to":…,"data":`. */
export function messageFromTo (from: string | null, targetJson: string): string {
  return `,"from":${JSON.stringify(from)},"to":${targetJson},"data":`
}

export function encodeAck (id: FrameId): string {
  return JSON.stringify({ type: 'ack', id })
}

export function encodeError (code: ErrorCode, message: string, id?: FrameId): string {
  return JSON.stringify(id === undefined ? { type: 'error', code, message } : { type: 'error', id, code, message })
}

export const PONG_FRAME = '{"type":"pong"}'

export function encodeJoined (room: string): string {
  return JSON.stringify({ type: 'joined', room })
}

export function encodeLeft (room: string): string {
  return JSON.stringify({ type: 'left', room })
}

export function encodeReconnect (afterMs: number): string {
  return JSON.stringify({ type: 'reconnect', afterMs })
}

/**
 * Serializes a payload once and checks it: JSON-serializable (no undefined, function, symbol, cycle,
 * BigInt) and at most `maxBytes` long. Returns the JSON text or a reason.
 */
export function serializeData (data: unknown, maxBytes: number): { ok: true, json: string } | { ok: false, reason: string } {
  let json: string | undefined
  try {
    json = JSON.stringify(data)
  } catch (err) {
    return { ok: false, reason: `data is not JSON-serializable: ${(err as Error).message}` }
  }
  if (json === undefined) return { ok: false, reason: `data is not JSON-serializable: ${typeof data}` }
  const bytes = Buffer.byteLength(json)
  if (bytes > maxBytes) return { ok: false, reason: `data is ${bytes} bytes, more than the ${maxBytes}-byte maximum` }
  return { ok: true, json }
}
