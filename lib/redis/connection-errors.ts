/**
 * What went wrong with a Redis connection, said so an operator can act on it: where (`host:port`, the
 * sentinels, the cluster seeds) and the cause (`ECONNREFUSED`, `ENOTFOUND`, `WRONGPASS`, `NOAUTH`…),
 * and a log of connection errors that repeats itself at most once per interval.
 */
import { UnavailableError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { RedisClient } from './command-pool.js'

/** A connection error as an operator reads it. */
export interface RedisFailure {
  /** Where: `host:port`, `sentinels h1:p1,h2:p2 (master mymaster)` or `cluster seeds h1:p1,h2:p2`; a cluster node's own address when known. */
  endpoint: string
  /** The error code (`ECONNREFUSED`) or the Redis error's first word (`WRONGPASS`, `NOAUTH`). */
  cause: string
  message: string
  /** It will not fix itself by reconnecting: the credentials or the permissions are wrong. */
  fatal: boolean
}

/** Redis refuses the credentials or the user: reconnecting cannot help. */
const FATAL = /^(WRONGPASS|NOAUTH|NOPERM)\b|^ERR (AUTH|invalid password|Client sent AUTH, but no password is set)/i

interface ClientOptionsView {
  host?: string
  port?: number
  path?: string | null
  sentinels?: Array<{ host?: string, port?: number }> | null
  name?: string
}

const hostPort = (node: { host?: string, port?: number }): string => `${node.host ?? 'localhost'}:${node.port ?? 6379}`

/** Where a client connects: its `host:port`, its sentinels, or its cluster seeds. */
export function redisEndpoint (client: RedisClient): string {
  if (client.isCluster) {
    const seeds = (client as unknown as { startupNodes?: unknown[] }).startupNodes ?? []
    return `cluster seeds ${seeds.map((seed) => typeof seed === 'string' ? seed : typeof seed === 'number' ? `localhost:${seed}` : hostPort(seed as { host?: string, port?: number })).join(',')}`
  }
  const options = client.options as ClientOptionsView
  if (options.sentinels !== null && options.sentinels !== undefined && options.sentinels.length > 0) {
    return `sentinels ${options.sentinels.map(hostPort).join(',')} (master ${options.name ?? 'mymaster'})`
  }
  return typeof options.path === 'string' && options.path !== '' ? options.path : hostPort(options)
}

/** `err` from a client at `endpoint` (a Cluster's "Failed to refresh slots cache" is told by its last node error). */
export function describeRedisError (err: unknown, endpoint: string): RedisFailure {
  const error = err instanceof Error ? err : new Error(String(err))
  const inner = (error as { lastNodeError?: unknown }).lastNodeError
  const message = inner instanceof Error ? `${error.message} (last node error: ${inner.message})` : error.message
  const detail = inner instanceof Error ? inner : error
  const code = (detail as { code?: unknown }).code
  const cause = typeof code === 'string' && code !== '' ? code : /^[A-Z][A-Z_]+\b/.exec(detail.message)?.[0] ?? detail.name
  return { endpoint, cause, message, fatal: FATAL.test(detail.message) }
}

/** `Redis 10.0.0.5:6379: WRONGPASS invalid username-password pair or user is disabled.` */
export function failureText (failure: RedisFailure): string {
  return `Redis ${failure.endpoint}: ${failure.message}`
}

const HINTS: Array<[RegExp, string]> = [
  [/^WRONGPASS|^ERR invalid password/i, 'check redis.password, or the user and password in a redis:// URL'],
  [/^NOAUTH/i, 'the server requires a password: set redis.password'],
  [/^ERR (AUTH|Client sent AUTH)/i, 'the server has no password set: leave redis.password empty'],
  [/^NOPERM/i, 'the Redis user lacks a permission fastify-wsc needs']
]

/**
 * `WSC_ERR_UNAVAILABLE` for a connection that is not ready: `what` and, when known, the last error
 * (also kept as the error's `redis` property); for one Redis refused, a hint at the setting to check.
 */
export function notReadyError (what: string, failure: RedisFailure | undefined): Error {
  if (failure === undefined) return new UnavailableError(what)
  const hint = failure.fatal ? HINTS.find(([pattern]) => pattern.test(failure.message))?.[1] : undefined
  const text = failure.fatal ? `${failureText(failure)}${hint === undefined ? '' : ` (${hint})`}` : `${what}: ${failureText(failure)}`
  return Object.assign(new UnavailableError(text), { redis: failure })
}

/** Whether `err` says Redis refused the connection for good (see {@link notReadyError}). */
export function isRefusal (err: unknown): boolean {
  return (err as { redis?: Partial<RedisFailure> } | undefined)?.redis?.fatal === true
}

/** Default interval between two log lines about the same error. */
export const REPEAT_INTERVAL_MS = 30_000

/**
 * Logs the errors of Redis clients: the first of a kind (same endpoint and message) at once — `error`
 * when it is fatal, else `warn` — then at most one per interval, saying how many were not logged.
 */
export class RedisErrorLog {
  readonly #log: Logger
  readonly #interval: number
  readonly #seen = new Map<string, { at: number, suppressed: number }>()

  constructor (log: Logger, interval = REPEAT_INTERVAL_MS) {
    this.#log = log
    this.#interval = interval
  }

  /** Logs the client's `error` events (and a Cluster client's `node error` events, which name the node). */
  watch (client: RedisClient, connection: string): void {
    const endpoint = redisEndpoint(client)
    client.on('error', (err: unknown) => this.report(describeRedisError(err, endpoint), connection))
    if (client.isCluster) client.on('node error', (err: unknown, node: unknown) => this.report(describeRedisError(err, typeof node === 'string' ? node : endpoint), connection))
  }

  report (failure: RedisFailure, connection: string): void {
    const key = `${failure.endpoint}\n${failure.message}`
    const now = Date.now()
    const seen = this.#seen.get(key)
    if (seen !== undefined && now - seen.at < this.#interval) {
      seen.suppressed++
      return
    }
    this.#seen.set(key, { at: now, suppressed: 0 })
    if (this.#seen.size > 100) this.#seen.delete(this.#seen.keys().next().value as string)
    const fields = { redis: failure.endpoint, cause: failure.cause, connection, ...(seen === undefined ? {} : { repeated: seen.suppressed }) }
    if (failure.fatal) this.#log.error(fields, failureText(failure))
    else this.#log.warn(fields, failureText(failure))
  }
}
