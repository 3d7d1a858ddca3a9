/**
 * Opening Redis as configured (standalone, Sentinel or Cluster), or adopting a client the app has: the
 * command connections and the dedicated Pub/Sub connection.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { WscConfig } from '../config.js'
import { ConfigError, OptionError } from '../errors.js'
import type { Logger } from '../logger.js'
import { isCluster, RedisCommandPool, type RedisClient } from './command-pool.js'
import { RedisErrorLog } from './connection-errors.js'

/** How the Redis deployment is reached. */
export type RedisMode = 'standalone' | 'sentinel' | 'cluster'

/** The command connections (shared with other Redis users such as a message store) and a dedicated Pub/Sub client. */
export interface RedisConnections {
  mode: RedisMode
  /** `redis.pool_size` command clients, named `wsc-command-<i>`. */
  commands: RedisCommandPool
  /** Named `wsc-pubsub`. */
  subscriber: Redis | Cluster
  /** Closes every client; safe to call more than once. */
  close (): Promise<void>
}

type RedisConfig = WscConfig['redis']

/** Whether the configuration names a Redis deployment at all. */
export function isRedisConfigured (config: RedisConfig): boolean {
  return config.addr !== '' || config.sentinels.length > 0 || config.clusterNodes.length > 0
}

/** `auto` picks cluster when seed nodes are set, sentinel when sentinels are set, else standalone. */
export function resolveRedisMode (config: RedisConfig): RedisMode {
  if (config.mode !== 'auto') return config.mode
  if (config.clusterNodes.length > 0) return 'cluster'
  if (config.sentinels.length > 0) return 'sentinel'
  return 'standalone'
}

/** `host:port`, `[v6]:port` or `host` (port 6379). */
export function parseHostPort (text: string, key: string): { host: string, port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d{1,5}))?$/.exec(text.trim())
  const port = Number(match?.[3] ?? 6379)
  const host = match?.[1] ?? match?.[2]
  if (host === undefined || port < 1 || port > 65535) {
    throw new ConfigError(`config: ${key} = ${JSON.stringify(text)} is invalid: expected host:port`)
  }
  return { host, port }
}

/** Reconnect delay: exponential from 100 ms to 3 s, with jitter so pods do not reconnect in lockstep. */
export function reconnectDelay (attempt: number): number {
  const base = Math.min(100 * 2 ** Math.min(attempt, 10), 3000)
  return Math.round(base / 2 + Math.random() * base / 2)
}

/**
 * Commands fail at once while Redis is unreachable (no offline queue, no silent resend after a
 * reconnect): a send then rejects instead of hanging or being delivered twice.
 */
const FAIL_FAST: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  commandTimeout: 5000
}

/** `CLIENT LIST` shows these names: an operator tells the pool's connections and the Pub/Sub one apart. */
export const commandConnectionName = (index: number): string => `wsc-command-${index}`
export const PUBSUB_CONNECTION_NAME = 'wsc-pubsub'

export interface RedisConnectionOptions {
  /** How long start-up waits for a connection (ms); default 10 s. */
  connectTimeout?: number | undefined
  /** Where connection errors go (with their address and cause, each kind at most every 30 s); default nowhere. */
  log?: Logger | undefined
}

/** Every client gets an error listener (without one, each reconnect attempt logs an unhandled 'error'). */
function watchErrors (log: Logger | undefined, clients: Array<[RedisClient, string]>): void {
  const errors = log === undefined ? undefined : new RedisErrorLog(log)
  for (const [client, name] of clients) {
    if (errors === undefined) client.on('error', () => {})
    else errors.watch(client, name)
  }
}

/**
 * Opens the clients the configuration names: standalone (`redis.addr`, a `host:port` or `redis://` URL),
 * Sentinel (`redis.sentinels` + `redis.master_name`) or Cluster (`redis.cluster_nodes`, sharded Pub/Sub):
 * `redis.pool_size` command clients (each a `Cluster` client in Cluster mode) and one Pub/Sub client.
 * All connect at once and reconnect with backoff for ever; the router re-registers and re-subscribes
 * when they return. `redis.min_idle_conns` is how many command clients start-up waits for.
 */
export function openRedisConnections (config: RedisConfig, options: RedisConnectionOptions = {}): RedisConnections {
  const mode = resolveRedisMode(config)
  const password = config.password === '' ? undefined : config.password
  const names = Array.from({ length: config.poolSize }, (_, i) => commandConnectionName(i))
  let commands: Array<Redis | Cluster>
  let subscriber: Redis | Cluster
  if (mode === 'cluster') {
    if (config.clusterNodes.length === 0) throw new ConfigError('config: redis.mode = "cluster" needs redis.cluster_nodes (REDIS_CLUSTER_NODES)')
    const seeds = config.clusterNodes.map((node) => parseHostPort(node, 'redis.cluster_nodes'))
    const clusterOptions = (name: string, sharded: boolean): ClusterOptions => ({
      clusterRetryStrategy: reconnectDelay,
      enableOfflineQueue: sharded,
      // ioredis's ready check sends CLUSTER INFO to a random master as soon as the slots are known;
      // without an offline queue it is refused while that master's connection is still being made, and
      // the client starts over after a back-off: seen taking more than 9 s, over and over. The pool's own
      // gate (connectedToEveryMaster in command-pool.ts) waits for every master's connection instead.
      enableReadyCheck: sharded,
      shardedSubscribers: sharded,
      // Command clients connect to each master as soon as they learn of it: a connection made lazily, on
      // the first command, lets the commands that follow go elsewhere and overtake it (no offline queue).
      redisOptions: { password, connectionName: name, ...(sharded ? {} : { maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false, commandTimeout: 5000, lazyConnect: false }) }
    })
    commands = names.map((name) => new Cluster(seeds, clusterOptions(name, false)))
    subscriber = new Cluster(seeds, clusterOptions(PUBSUB_CONNECTION_NAME, true))
  } else {
    let base: RedisOptions
    if (mode === 'sentinel') {
      if (config.sentinels.length === 0) throw new ConfigError('config: redis.mode = "sentinel" needs redis.sentinels (REDIS_SENTINELS)')
      base = {
        sentinels: config.sentinels.map((node) => parseHostPort(node, 'redis.sentinels')),
        name: config.masterName,
        sentinelPassword: password,
        sentinelRetryStrategy: reconnectDelay
      }
    } else if (/^rediss?:\/\//i.test(config.addr)) {
      base = {}
    } else {
      if (config.addr === '') throw new ConfigError('config: redis.mode = "standalone" needs redis.addr (REDIS_ADDR)')
      base = parseHostPort(config.addr, 'redis.addr')
    }
    const redisOptions = (name: string, extra: RedisOptions): RedisOptions => ({
      ...base,
      ...(password === undefined ? {} : { password }),
      ...(config.db === 0 ? {} : { db: config.db }),
      connectionName: name,
      retryStrategy: reconnectDelay,
      ...extra
    })
    const url = /^rediss?:\/\//i.test(config.addr) && mode === 'standalone' ? config.addr : undefined
    const make = (opts: RedisOptions): Redis => url === undefined ? new Redis(opts) : new Redis(url, opts)
    commands = names.map((name) => make(redisOptions(name, FAIL_FAST)))
    // The router re-subscribes its own channel list when the connection returns.
    subscriber = make(redisOptions(PUBSUB_CONNECTION_NAME, { ...FAIL_FAST, autoResubscribe: false }))
  }
  watchErrors(options.log, [...commands.map((client, i): [RedisClient, string] => [client, names[i] as string]), [subscriber, PUBSUB_CONNECTION_NAME]])
  const pool = new RedisCommandPool(commands, { minReady: config.minIdleConns, connectTimeout: options.connectTimeout })
  return { mode, commands: pool, subscriber, close: closer(pool, subscriber, true) }
}

/**
 * Connections around a client the app already has (`fastify.redis`, an ioredis `Redis` or `Cluster`):
 * commands go through it, Pub/Sub through a duplicate of it (a subscribed connection can run nothing
 * else) that these connections own. The app's client is closed only with `closeClient`. Its own
 * settings apply: an offline queue or a keep-alive of its own stays the app's choice, but commands are
 * still refused at once while it is not connected.
 */
export function adoptRedisClient (client: RedisClient, options: RedisConnectionOptions & { closeClient: boolean }): RedisConnections {
  const own = isCluster(client) ? { ...client.options.redisOptions, ...client.options } : client.options
  if (typeof own.keyPrefix === 'string' && own.keyPrefix !== '') {
    throw new OptionError('client', `the Redis client has keyPrefix ${JSON.stringify(own.keyPrefix)}; fastify-wsc builds its own keys: pass a client without keyPrefix and set the prefix option instead`)
  }
  let mode: RedisMode
  let subscriber: Redis | Cluster
  if (isCluster(client)) {
    mode = 'cluster'
    subscriber = client.duplicate(undefined, {
      enableOfflineQueue: true,
      shardedSubscribers: true,
      lazyConnect: false,
      redisOptions: { ...client.options.redisOptions, connectionName: PUBSUB_CONNECTION_NAME }
    })
  } else {
    mode = (client.options.sentinels?.length ?? 0) > 0 ? 'sentinel' : 'standalone'
    subscriber = client.duplicate({ ...FAIL_FAST, autoResubscribe: false, lazyConnect: false, connectionName: PUBSUB_CONNECTION_NAME })
  }
  // The app's own client keeps the error handling the app gave it; the duplicate is ours.
  watchErrors(options.log, [[subscriber, PUBSUB_CONNECTION_NAME]])
  // A lazily connecting client would wait for a first command that start-up is itself waiting for.
  if (client.status === 'wait') client.connect().catch(() => {})
  const pool = new RedisCommandPool([client], { minReady: 1, connectTimeout: options.connectTimeout })
  return { mode, commands: pool, subscriber, close: closer(pool, subscriber, options.closeClient) }
}

/** Closes the pool's clients (unless they are the app's) and the subscriber; the same promise each time. */
function closer (pool: RedisCommandPool, subscriber: Redis | Cluster, quitClients: boolean): () => Promise<void> {
  let closing: Promise<void> | undefined
  return () => (closing ??= Promise.all([
    pool.close(quitClients),
    (async () => {
      try {
        if (subscriber.status === 'ready') await subscriber.quit()
      } catch {}
      subscriber.disconnect()
    })()
  ]).then(() => {}))
}
