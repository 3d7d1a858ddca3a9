/**
 * The wire format of routed events between nodes (one header line, then the message frame verbatim),
 * of batches of them, and of the loopback probe.
 */
import type { RoutedEvent } from './router.js'

/**
 * What travels on a Pub/Sub channel between nodes: a one-line JSON header naming the sending node, and
 * for `deliver` the already-encoded client frame after a newline, verbatim (never escaped again).
 * `seq` and `publishedAt` (epoch ms, for the receiver's publish-to-write latency) are optional: a header
 * without them, as older versions wrote, still decodes.
 *
 *     {"kind":"deliver","origin":"wsc-0","target":{"user":"u1"},"seq":42,"publishedAt":1764201600000}\n{"type":"message",…}
 *     {"kind":"kick","origin":"wsc-0","userId":"u1","code":1008,"reason":"kicked"}
 *     {"kind":"probe","origin":"wsc-0","n":7}
 *
 * A batch (the Redis script that stores and routes user messages writes them: `inbox-scripts.ts`)
 * carries the headers of its `deliver` events in one line, then their frames one per line, in order:
 *
 *     {"kind":"batch","origin":"wsc-0","events":[{"kind":"deliver","target":{"user":"u1"},"seq":42,"publishedAt":1764201600000},…]}\n{"type":"message",…}\n{"type":"message",…}
 */
export type ChannelMessage =
  | { origin: string, event: RoutedEvent }
  | { origin: string, events: RoutedEvent[] }
  | { origin: string, probe: number }

const isString = (value: unknown): value is string => typeof value === 'string'
const isInt = (value: unknown): value is number => Number.isSafeInteger(value)

export function encodeRoutedEvent (origin: string, event: RoutedEvent): string {
  if (event.kind !== 'deliver') return JSON.stringify({ ...event, origin })
  const seq = event.seq === undefined ? '' : `,"seq":${event.seq}${isInt(event.prevSeq) ? `,"prevSeq":${event.prevSeq}` : ''}`
  const publishedAt = isInt(event.publishedAt) ? `,"publishedAt":${event.publishedAt}` : ''
  return `{"kind":"deliver","origin":${JSON.stringify(origin)},"target":${JSON.stringify(event.target)}${seq}${publishedAt}}\n${event.frame}`
}

export function encodeProbe (origin: string, n: number): string {
  return JSON.stringify({ kind: 'probe', origin, n })
}

/** Decodes a channel message; undefined for anything this version did not write. */
export function decodeChannelMessage (text: string): ChannelMessage | undefined {
  const newline = text.indexOf('\n')
  const header = parseObject(newline < 0 ? text : text.slice(0, newline))
  if (header === undefined) return undefined
  const { origin } = header
  if (!isString(origin)) return undefined
  if (header.kind === 'probe') return isInt(header.n) ? { origin, probe: header.n } : undefined
  if (header.kind === 'batch') {
    const events = decodeBatch(header.events, newline < 0 ? [] : text.slice(newline + 1).split('\n'))
    return events === undefined ? undefined : { origin, events }
  }
  const event = decodeEvent(header, newline < 0 ? undefined : text.slice(newline + 1))
  return event === undefined ? undefined : { origin, event }
}

function parseObject (json: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(json)
    return parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) ? undefined : parsed as Record<string, unknown>
  } catch {
    return undefined
  }
}

/** A batch's `deliver` headers with their frames; undefined unless every header decodes and the counts match. */
function decodeBatch (headers: unknown, frames: string[]): RoutedEvent[] | undefined {
  if (!Array.isArray(headers) || headers.length !== frames.length || headers.length === 0) return undefined
  const events: RoutedEvent[] = []
  for (let i = 0; i < headers.length; i++) {
    const header: unknown = headers[i]
    if (header === null || typeof header !== 'object' || (header as Record<string, unknown>).kind !== 'deliver') return undefined
    const event = decodeEvent(header as Record<string, unknown>, frames[i])
    if (event === undefined) return undefined
    events.push(event)
  }
  return events
}

/** One event from its header (and, for `deliver`, the frame that followed it). */
function decodeEvent (header: Record<string, unknown>, frame: string | undefined): RoutedEvent | undefined {
  switch (header.kind) {
    case 'deliver': {
      const target = header.target
      if (frame === undefined || target === null || typeof target !== 'object') return undefined
      const event: RoutedEvent = { kind: 'deliver', target: target as never, frame }
      if (isInt(header.seq)) event.seq = header.seq
      if (isInt(header.prevSeq)) event.prevSeq = header.prevSeq
      // Missing or malformed (an older sender): the message is still delivered, only without a latency sample.
      if (isInt(header.publishedAt)) event.publishedAt = header.publishedAt
      return event
    }
    case 'kick':
      return isString(header.userId) && isInt(header.code) && isString(header.reason)
        ? { kind: 'kick', userId: header.userId, code: header.code, reason: header.reason }
        : undefined
    case 'disconnect':
      return isString(header.connectionId) && isInt(header.code) && isString(header.reason)
        ? { kind: 'disconnect', connectionId: header.connectionId, code: header.code, reason: header.reason }
        : undefined
    case 'join':
    case 'leave':
      return isString(header.userId) && isString(header.room)
        ? { kind: header.kind, userId: header.userId, room: header.room }
        : undefined
    default:
      return undefined
  }
}
