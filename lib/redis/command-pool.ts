/**
 * The Redis command connections of a node: one user's commands always on the same connection, node-
 * scoped ones on connection 0, and the wait for their first connection.
 */
import type { Cluster, Redis } from 'ioredis'
import { OptionError, UnavailableError } from '../errors.js'
import { describeRedisError, isRefusal, notReadyError, redisEndpoint, type RedisFailure } from './connection-errors.js'

/** A command client: standalone/Sentinel `Redis` or `Cluster`. */
export type RedisClient = Redis | Cluster

/** Whether a client is a Cluster one; by its flag, so a client from another copy of ioredis counts too. */
export function isCluster (client: RedisClient): client is Cluster {
  return client.isCluster
}

/**
 * The pool connection that serves `key` (a user id, a room name): FNV-1a (32 bit) of its UTF-16 code
 * units modulo `size`. It depends on nothing but the key and the size, so a key never moves to another
 * connection while the process runs, and its commands keep the order they were issued in.
 */
export function poolIndex (key: string, size: number): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % size
}

export interface RedisCommandPoolOptions {
  /**
   * Connections that must be ready before {@link RedisCommandPool.ready} resolves
   * (`redis.min_idle_conns`), connection 0 always among them; clamped to 1…size. Default 1.
   */
  minReady?: number
  /** How long commands wait for a connection still making its first connection (ms); default 10 s. */
  connectTimeout?: number
}

/**
 * A Cluster client connects to each master on its own; while one of those connections is still being
 * made, a command for that master is sent to another one and comes back after later commands (ioredis
 * without an offline queue). Resolves once the client has a live connection to every master.
 */
async function connectedToEveryMaster (client: RedisClient): Promise<void> {
  if (!isCluster(client)) return
  await Promise.allSettled(client.nodes('master').map((node) => node.ping()))
}

/** A pending wait for a client's connection: the promise, its cancel, and the last error seen meanwhile. */
export interface ConnectionWait {
  ready: Promise<void>
  cancel: (err: Error) => void
  /** The last error the client reported while this waited; undefined when none. */
  lastFailure: () => RedisFailure | undefined
}

/**
 * Waits for a client's connection: resolves when it is ready (a Cluster one once it reaches every
 * master); rejects with `failed(lastFailure)` after `timeoutMs`, at once with `failed(failure)` when the
 * client reports an error reconnecting cannot fix (WRONGPASS, NOAUTH, NOPERM), or with the error given
 * to `cancel`.
 */
export function untilReady (client: RedisClient, timeoutMs: number, failed: (failure: RedisFailure | undefined) => Error): ConnectionWait {
  let last: RedisFailure | undefined
  if (client.status === 'ready') return { ready: Promise.resolve(), cancel: () => {}, lastFailure: () => last }
  let cancel: (err: Error) => void = () => {}
  const endpoint = redisEndpoint(client)
  const ready = new Promise<void>((resolve, reject) => {
    const onError = (err: unknown, node?: unknown): void => {
      last = describeRedisError(err, typeof node === 'string' ? node : endpoint)
      if (last.fatal) settle(failed(last))
    }
    const settle = (err?: Error): void => {
      clearTimeout(timer)
      client.off('ready', onReady)
      client.off('error', onError)
      client.off('node error', onError)
      if (err === undefined) resolve()
      else reject(err)
    }
    const onReady = (): void => {
      client.off('ready', onReady)
      connectedToEveryMaster(client).then(() => settle(), () => settle())
    }
    const timer = setTimeout(() => settle(failed(last)), timeoutMs).unref()
    client.on('ready', onReady)
    client.on('error', onError)
    if (client.isCluster) client.on('node error', onError)
    cancel = settle
  })
  return { ready, cancel, lastFailure: () => last }
}

/**
 * One pool connection. Until its first connection is made (or until the connect timeout) commands for
 * it wait and are issued in the order they came; from then on they are issued at once, and rejected
 * at once with `WSC_ERR_UNAVAILABLE` while the connection is down (there is no offline queue).
 */
class PoolConnection {
  readonly client: RedisClient
  readonly index: number
  /** Settles when the first connection is made (or at the timeout). */
  readonly firstConnection: Promise<void>
  /** Pending until the first connection (or the timeout); cleared once every command that waited on it is issued. */
  #first: Promise<void> | undefined
  #firstSettled = false
  #waiting = 0
  #stopWaiting: ((err: Error) => void) | undefined
  #lastFailure: () => RedisFailure | undefined = () => undefined

  constructor (client: RedisClient, index: number, connectTimeout: number) {
    this.client = client
    this.index = index
    if (client.status === 'ready') {
      this.firstConnection = Promise.resolve()
      this.#firstSettled = true
      return
    }
    const first = untilReady(client, connectTimeout, (failure) => notReadyError(`Redis command connection ${index} not ready within ${connectTimeout} ms (connection ${client.status})`, failure))
    this.#lastFailure = first.lastFailure
    this.#stopWaiting = first.cancel
    this.#first = this.firstConnection = first.ready
    // Registered before any command's callback, so it runs first when the promise settles.
    const opened = (): void => {
      this.#firstSettled = true
      this.#stopWaiting = undefined
      if (this.#waiting === 0) this.#first = undefined
    }
    this.#first.then(opened, opened)
  }

  /** The last error seen while making the first connection. */
  get lastFailure (): RedisFailure | undefined {
    return this.#lastFailure()
  }

  /** Still making its first connection, within the connect timeout. */
  get connecting (): boolean {
    return this.#first !== undefined && !this.#firstSettled
  }

  run<T> (fn: (client: RedisClient) => Promise<T>): Promise<T> {
    const first = this.#first
    if (first === undefined) {
      if (this.client.status !== 'ready') {
        return Promise.reject(new UnavailableError(`Redis is unreachable (command connection ${this.index} ${this.client.status})`))
      }
      try {
        return fn(this.client)
      } catch (err) {
        return Promise.reject(err)
      }
    }
    // Callbacks on one promise run in the order they were added: waiting commands are issued in call order,
    // and a command that comes later finds #first still set until the last of them is issued.
    this.#waiting++
    const release = (): void => {
      if (--this.#waiting === 0 && this.#firstSettled) this.#first = undefined
    }
    return first.then(() => {
      release()
      return fn(this.client)
    }, (err: unknown) => {
      release()
      throw err
    })
  }

  /** Rejects the commands still waiting for the first connection. */
  stopWaiting (): void {
    this.#stopWaiting?.(new UnavailableError('the Redis connection pool is closed'))
  }
}

/** `command connection 0 reconnecting; command connections 1, 3 connecting` */
function describeConnections (connections: readonly PoolConnection[]): string[] {
  const byStatus = new Map<string, number[]>()
  for (const connection of connections) {
    const status = connection.client.status
    byStatus.set(status, [...byStatus.get(status) ?? [], connection.index])
  }
  return [...byStatus].map(([status, indexes]) => `command connection${indexes.length > 1 ? 's' : ''} ${indexes.join(', ')} ${status}`)
}

/**
 * `redis.pool_size` command connections. Every command about one user (presence, seq, inbox, acked)
 * runs on the connection {@link poolIndex} picks for the user id, so one user's commands stay in order;
 * a room's publishes on the one its name picks; node-scoped commands (registry, index, reaping,
 * discovery, broadcast) on connection 0.
 *
 * Every connection starts connecting at once. {@link ready} waits for `minReady` of them
 * (`redis.min_idle_conns`); the others finish in the background, and a command for one of those waits
 * for its first connection (up to the connect timeout) rather than going to another connection, which
 * could reorder the user's commands.
 */
export class RedisCommandPool {
  readonly clients: readonly RedisClient[]
  /** How many connections {@link ready} waits for. */
  readonly minReady: number
  readonly #connections: readonly PoolConnection[]
  #closing: Promise<void> | undefined

  constructor (clients: readonly RedisClient[], options: RedisCommandPoolOptions = {}) {
    if (clients.length === 0) throw new OptionError('clients', 'a Redis command pool needs at least one client')
    this.clients = [...clients]
    this.minReady = Math.min(Math.max(1, options.minReady ?? 1), clients.length)
    const connectTimeout = options.connectTimeout ?? 10_000
    this.#connections = this.clients.map((client, index) => new PoolConnection(client, index, connectTimeout))
  }

  /** A pool as is, or a pool of one around a client the caller owns (for stores built on one client). */
  static of (source: RedisCommandPool | RedisClient): RedisCommandPool {
    return source instanceof RedisCommandPool ? source : new RedisCommandPool([source])
  }

  get size (): number {
    return this.clients.length
  }

  /** Connection 0: node-scoped commands, and other Redis users' own commands (`fastify.wscRedis`). */
  get nodeClient (): RedisClient {
    return this.#connections[0]?.client as RedisClient
  }

  /** Every connection is ready. */
  get allReady (): boolean {
    return this.#connections.every((connection) => connection.client.status === 'ready')
  }

  /** Runs `fn` on the user's connection (see {@link poolIndex}). */
  forUser<T> (userId: string, fn: (client: RedisClient) => Promise<T>): Promise<T> {
    return this.#at(poolIndex(userId, this.size)).run(fn)
  }

  /** Runs `fn` on connection `index` (0 ≤ index < size), as {@link forUser} does for a user whose {@link poolIndex} it is. */
  onConnection<T> (index: number, fn: (client: RedisClient) => Promise<T>): Promise<T> {
    return this.#at(index).run(fn)
  }

  /** Runs `fn` on the room's connection, so one room's messages from this node stay in order. */
  forRoom<T> (room: string, fn: (client: RedisClient) => Promise<T>): Promise<T> {
    return this.#at(poolIndex(room, this.size)).run(fn)
  }

  /** Runs `fn` on connection 0. */
  forNode<T> (fn: (client: RedisClient) => Promise<T>): Promise<T> {
    return this.#at(0).run(fn)
  }

  #at (index: number): PoolConnection {
    return this.#connections[index] as PoolConnection
  }

  /**
   * Resolves once connection 0 and at least {@link minReady} connections in all have made their first
   * connection; rejects with `WSC_ERR_UNAVAILABLE` after `timeout` ms. `what` names Redis in the error
   * (`Redis (cluster)`).
   */
  async ready (timeout: number, what = 'Redis'): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      let connected = 0
      let first = false
      let finished = false
      const done = (err?: Error): void => {
        if (finished) return
        finished = true
        clearTimeout(timer)
        if (err === undefined) resolve()
        else reject(err)
      }
      const timer = setTimeout(() => {
        const waiting = this.#connections.filter((connection) => connection.client.status !== 'ready' || connection.connecting)
        const failure = waiting.map((connection) => connection.lastFailure).find((last) => last !== undefined)
        done(notReadyError(`${what} not reachable within ${timeout} ms: ${this.minReady} of ${this.size} command connections needed; ${describeConnections(waiting).join('; ')}`, failure))
      }, timeout).unref()
      for (const connection of this.#connections) {
        connection.firstConnection.then(() => {
          connected++
          first ||= connection.index === 0
          if (first && connected >= this.minReady) done()
        }, (err: unknown) => {
          // Redis refused the credentials: every connection will be refused alike, waiting cannot help.
          if (isRefusal(err)) done(err as Error)
        })
      }
    })
  }

  /** What is wrong: connections that are down, other than those still making their first connection. */
  problems (): string[] {
    return describeConnections(this.#connections.filter((connection) => connection.client.status !== 'ready' && !connection.connecting))
  }

  /** Connections still making their first connection (after start-up, when `min_idle_conns` < `pool_size`). */
  get connecting (): number {
    return this.#connections.filter((connection) => connection.connecting).length
  }

  /**
   * Closes every connection (the pool's owner calls this); safe to call more than once. With
   * `quitClients` false the clients stay open (they belong to the app): only waiting commands are refused.
   */
  close (quitClients = true): Promise<void> {
    this.#closing ??= Promise.all(this.#connections.map(async (connection) => {
      connection.stopWaiting()
      if (!quitClients) return
      try {
        if (connection.client.status === 'ready') await connection.client.quit()
      } catch {}
      connection.client.disconnect()
    })).then(() => {})
    return this.#closing
  }
}
