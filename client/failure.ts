/** Why a connection or a connection attempt ended. */
export type WscFailureKind =
  /** Nothing listens at the address (ECONNREFUSED). Node only: a browser reports `network`. */
  | 'refused'
  /** The host name does not resolve (ENOTFOUND, EAI_AGAIN). Node only: a browser reports `network`. */
  | 'dns'
  /** No `welcome` within `openTimeoutMs`, or an open connection stayed silent past two heartbeats. */
  | 'timeout'
  /** The server answered the upgrade with an HTTP status (401, 403, 503, …). Node only. */
  | 'http'
  /** The connection failed or dropped without saying why (a browser's failed handshake, close 1006). */
  | 'network'
  /** The server closed the connection with a close code. */
  | 'closed'
  /** The WebSocket could not even be created (a token that is not a valid subprotocol, a bad URL). */
  | 'invalid'

export interface WscFailure {
  kind: WscFailureKind
  /** One line for a person: what happened and, when it is final, what to do. */
  message: string
  /** True when the client stops reconnecting because of it (401, 403, close 1008, `invalid`). */
  final: boolean
  /** The close code, for a connection that opened. */
  code?: number
  /** The HTTP status of a refused upgrade (Node with `ws` only: browsers do not expose it). */
  status?: number
  /** A 503's `Retry-After`, in ms: the next attempt waits at least this long. */
  retryAfterMs?: number
}

/** What a socket told about an attempt that never reached `welcome`. */
export interface AttemptReport {
  /** The `error` event, when there was one (`ws` puts the cause in `.error`). */
  error?: unknown
  status?: number
  retryAfterMs?: number
  /** The `close` event's code. */
  code?: number
  reason?: string
}

const HTTP_MEANING: Record<number, string> = {
  400: 'not accepted as a WebSocket upgrade',
  401: 'unauthorized: the token is missing, bad or expired',
  403: 'forbidden: this user may not connect',
  503: 'the server is draining or full'
}

/** Classifies an attempt that ended before the server's `welcome`. */
export function attemptFailure (report: AttemptReport, host: string): WscFailure {
  const { status } = report
  if (status !== undefined) {
    const failure: WscFailure = {
      kind: 'http',
      status,
      final: status === 401 || status === 403,
      message: `the server refused the upgrade with HTTP ${status}: ${HTTP_MEANING[status] ?? 'unexpected answer'}`
    }
    if (report.retryAfterMs !== undefined) failure.retryAfterMs = report.retryAfterMs
    return failure
  }
  const cause = (report.error as { error?: { code?: unknown, message?: unknown } } | undefined)?.error
  const code = typeof cause?.code === 'string' ? cause.code : undefined
  if (code === 'ECONNREFUSED') return { kind: 'refused', final: false, message: `connection refused by ${host}` }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { kind: 'dns', final: false, message: `cannot resolve ${host} (${code})` }
  const upgraded = report.code !== undefined && report.code !== 1006
  if (upgraded) return closeFailure(report.code ?? 1006, report.reason)
  const detail = typeof cause?.message === 'string' ? `: ${cause.message}` : ''
  return { kind: 'network', final: false, message: `could not connect to ${host}${detail}` }
}

/** Classifies the close of a connection (code 1006: dropped without a close frame). */
export function closeFailure (code: number, reason?: string): WscFailure {
  if (code === 1006) return { kind: 'network', code, final: false, message: 'the connection dropped' }
  const said = reason === undefined || reason === '' ? '' : `: ${reason}`
  if (code === 1008) return { kind: 'closed', code, final: true, message: `closed by the server (1008, kicked or token revoked${said}); not reconnecting` }
  return { kind: 'closed', code, final: false, message: `closed by the server (${code}${said})` }
}

/** `Retry-After` (seconds or an HTTP date) in ms, or undefined. */
export function parseRetryAfter (value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value
  if (text === undefined || text === '') return undefined
  if (/^\d+$/.test(text)) return Number(text) * 1000
  const at = Date.parse(text)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}
