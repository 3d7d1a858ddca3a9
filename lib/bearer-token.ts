/** Prefix of the `Sec-WebSocket-Protocol` entry that carries a token (browsers cannot set headers). */
export const BEARER_SUBPROTOCOL_PREFIX = 'wsc.bearer.'
/** The subprotocol the server selects when a client offers it (so a token is never echoed back). */
export const PROTOCOL_NAME = 'wsc.v1'

export interface TokenSources {
  authorization?: string | undefined
  /** The raw `Sec-WebSocket-Protocol` header. */
  protocol?: string | undefined
  /** The request URL (path and query). */
  url?: string | undefined
}

/**
 * The bearer token of an upgrade request, from `Authorization: Bearer <token>`, a
 * `wsc.bearer.<token>` subprotocol entry, or `?token=`, in that order; undefined when none is there.
 */
export function extractBearerToken (sources: TokenSources): string | undefined {
  const header = /^Bearer\s+(\S+)\s*$/i.exec(sources.authorization ?? '')
  if (header?.[1] !== undefined) return header[1]
  for (const entry of (sources.protocol ?? '').split(',')) {
    const name = entry.trim()
    if (name.startsWith(BEARER_SUBPROTOCOL_PREFIX) && name.length > BEARER_SUBPROTOCOL_PREFIX.length) {
      return name.slice(BEARER_SUBPROTOCOL_PREFIX.length)
    }
  }
  const query = sources.url?.indexOf('?') ?? -1
  if (query >= 0) {
    const token = new URLSearchParams(sources.url?.slice(query + 1)).get('token')
    if (token !== null && token !== '') return token
  }
  return undefined
}

/**
 * Picks the subprotocol to answer with: `wsc.v1` when offered, else the first entry that does not carry
 * a token, else the first entry (a browser fails a connection whose offer gets no answer).
 */
export function selectSubprotocol (offered: Iterable<string>): string | undefined {
  let first: string | undefined
  let plain: string | undefined
  for (const name of offered) {
    if (name === PROTOCOL_NAME) return name
    first ??= name
    if (plain === undefined && !name.startsWith(BEARER_SUBPROTOCOL_PREFIX)) plain = name
  }
  return plain ?? first
}

const TOKEN_IN_QUERY = /([?&]token=)[^&#]*/gi

/** The URL with the value of any `token` query parameter replaced, for logs. */
export function redactToken (url: string): string {
  return url.replace(TOKEN_IN_QUERY, '$1[REDACTED]')
}
