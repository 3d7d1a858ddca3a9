/**
 * The wire format of routed events between nodes (one header line, then the message frame verbatim)
 * and of the loopback probe.
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
 */
export type ChannelMessage =
  | { origin: string, event: RoutedEvent }
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
  let header: Record<string, unknown>
  try {
    const parsed: unknown = JSON.parse(newline < 0 ? text : text.slice(0, newline))
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined
    header = parsed as Record<string, unknown>
  } catch {
    return undefined
  }
  const { origin } = header
  if (!isString(origin)) return undefined
  switch (header.kind) {
    case 'probe':
      return isInt(header.n) ? { origin, probe: header.n } : undefined
    case 'deliver': {
      const target = header.target
      if (newline < 0 || target === null || typeof target !== 'object') return undefined
      const event: RoutedEvent = { kind: 'deliver', target: target as never, frame: text.slice(newline + 1) }
      if (isInt(header.seq)) event.seq = header.seq
      if (isInt(header.prevSeq)) event.prevSeq = header.prevSeq
      // Missing or malformed (an older sender): the message is still delivered, only without a latency sample.
      if (isInt(header.publishedAt)) event.publishedAt = header.publishedAt
      return { origin, event }
    }
    case 'kick':
      return isString(header.userId) && isInt(header.code) && isString(header.reason)
        ? { origin, event: { kind: 'kick', userId: header.userId, code: header.code, reason: header.reason } }
        : undefined
    case 'disconnect':
      return isString(header.connectionId) && isInt(header.code) && isString(header.reason)
        ? { origin, event: { kind: 'disconnect', connectionId: header.connectionId, code: header.code, reason: header.reason } }
        : undefined
    case 'join':
    case 'leave':
      return isString(header.userId) && isString(header.room)
        ? { origin, event: { kind: header.kind, userId: header.userId, room: header.room } }
        : undefined
    default:
      return undefined
  }
}
