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

const REDACTED = '[REDACTED]'

/** Whether a `name=value` query segment's name, decoded as `URLSearchParams` decodes it, is `token` in any case. */
function isTokenParameter (segment: string): boolean {
  const name = new URLSearchParams(segment).keys().next().value
  return name !== undefined && name.toLowerCase() === 'token'
}

/**
 * The URL with the value of every `token` query parameter replaced, for logs. Parameter names are
 * decoded before they are compared (`?%74oken=` authenticates as `?token=` does), and in any case;
 * everything else stays as it was sent.
 */
export function redactToken (url: string): string {
  const query = url.indexOf('?')
  if (query < 0) return url
  const segments = url.slice(query + 1).split('&').map((segment) => {
    if (!isTokenParameter(segment)) return segment
    const equals = segment.indexOf('=')
    return equals < 0 ? segment : `${segment.slice(0, equals + 1)}${REDACTED}`
  })
  return `${url.slice(0, query + 1)}${segments.join('&')}`
}

type HeaderValue = string | string[] | number | undefined

/**
 * Request headers with every credential replaced, for logs: the `Authorization` and
 * `Proxy-Authorization` credentials (the scheme stays), each cookie's value, and the token of every
 * `wsc.bearer.<token>` entry of `Sec-WebSocket-Protocol`. Names are matched in any case.
 */
export function redactHeaders<T extends Record<string, HeaderValue>> (headers: T): T {
  const out: Record<string, HeaderValue> = {}
  for (const [name, value] of Object.entries(headers)) {
    const redact = REDACT_HEADER[name.toLowerCase()]
    out[name] = redact === undefined || value === undefined || typeof value === 'number'
      ? value
      : Array.isArray(value) ? value.map(redact) : redact(value)
  }
  return out as T
}

const redactCredentials = (value: string): string => {
  const scheme = /^\s*(\S+)\s+\S/.exec(value)?.[1]
  return scheme === undefined ? REDACTED : `${scheme} ${REDACTED}`
}

const REDACT_HEADER: Record<string, (value: string) => string> = {
  authorization: redactCredentials,
  'proxy-authorization': redactCredentials,
  cookie: (value) => value.split(';').map((pair) => {
    const equals = pair.indexOf('=')
    return equals < 0 ? pair : `${pair.slice(0, equals + 1)}${REDACTED}`
  }).join(';'),
  'sec-websocket-protocol': (value) => value.split(',').map((entry) => {
    const name = entry.trim()
    return name.toLowerCase().startsWith(BEARER_SUBPROTOCOL_PREFIX) ? `${BEARER_SUBPROTOCOL_PREFIX}${REDACTED}` : name
  }).join(', ')
}
