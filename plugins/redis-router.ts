/**
 * The `redis-router` plugin: connects Redis (or adopts the app's client) and builds the router that
 * reaches every pod.
 */
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { resolveSection, type ConfigSectionInput } from '../lib/config.js'
import { ConfigError } from '../lib/errors.js'
import type { RedisClient, RedisCommandPool } from '../lib/redis/command-pool.js'
import { adoptRedisClient, isRedisConfigured, openRedisConnections, type RedisMode } from '../lib/redis/connection.js'
import { RedisRouter } from '../lib/redis/router.js'
import type { Router } from '../lib/router/router.js'

/**
 * Options of the `redis-router` plugin: either `client` (a client the app already has) or the
 * connection keys of `redis.*` (`addr`, `sentinels` + `masterName`, or `clusterNodes`; `password`,
 * `db`, `poolSize`, `minIdleConns`), plus `prefix` and the registry timings of `distributed.*`.
 */
export interface RedisRouterPluginOptions extends ConfigSectionInput<'redis'>, Pick<ConfigSectionInput<'distributed'>, 'heartbeatInterval' | 'nodeDiscoveryInterval'> {
  /**
   * An ioredis `Redis` or `Cluster` the app already has (for example `fastify.redis` from
   * `@fastify/redis`): commands go through it, Pub/Sub through a duplicate of it. It must not have a
   * `keyPrefix` (use `prefix`).
   */
  client?: RedisClient | undefined
  /** Close `client` when the app closes; default false (it is the app's). */
  closeClient?: boolean | undefined
}

/** The Redis connections the router uses, for the message stores that keep user messages in Redis. */
export interface WscRedis {
  mode: RedisMode
  /** Key and channel prefix. */
  prefix: string
  /** Command connections; one user's commands always run on the same one. */
  commands: RedisCommandPool
  /** Command connection 0: use it for commands of your own. */
  client: RedisClient
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The Redis connections of the router (registered by the `redis-router` plugin). */
    wscRedis: WscRedis
    /** Cross-node routing: node registry, presence, Pub/Sub (Redis with `redis-router`, else in memory). */
    wscRouter: Router
  }
}

/** How long start-up waits for Redis when Fastify sets no `pluginTimeout`. */
const CONNECT_TIMEOUT_MS = 10_000

/**
 * How long start-up waits for Redis: 10 s, but a second less than Fastify's `pluginTimeout` (and never
 * less than half of it), so a start that cannot connect fails with Redis's own error (address, cause)
 * rather than Fastify's hook timeout.
 */
function startTimeout (pluginTimeout: number | undefined): number {
  if (pluginTimeout === undefined || pluginTimeout <= 0) return CONNECT_TIMEOUT_MS
  return Math.max(Math.min(CONNECT_TIMEOUT_MS, pluginTimeout - 1000), Math.floor(pluginTimeout / 2))
}

/**
 * The Redis Service, as the pods see it: connects Redis (a client of the app's, or standalone, Sentinel
 * or Cluster from the options) and builds the router that the websocket plugin starts under this
 * node's identity. The connections close in `onClose`, after the websocket plugin (registered later)
 * has closed its sockets and the router.
 */
async function registerRedisRouter (fastify: FastifyInstance, options: RedisRouterPluginOptions): Promise<void> {
  const { client, closeClient = false, heartbeatInterval, nodeDiscoveryInterval, ...connection } = options
  const redis = resolveSection('redis', connection, 'wsc-redis-router')
  const distributed = resolveSection('distributed', { heartbeatInterval, nodeDiscoveryInterval }, 'wsc-redis-router')
  if (client === undefined && !isRedisConfigured(redis)) {
    throw new ConfigError('config: wsc-redis-router needs a Redis: pass client (an ioredis client the app has), addr, sentinels or clusterNodes')
  }
  const connectTimeout = startTimeout(fastify.initialConfig.pluginTimeout)
  const connections = client === undefined
    ? openRedisConnections(redis, { connectTimeout, log: fastify.log })
    : adoptRedisClient(client, { closeClient, connectTimeout, log: fastify.log })
  const router = new RedisRouter({
    mode: connections.mode,
    commands: connections.commands,
    subscriber: connections.subscriber,
    prefix: redis.prefix,
    heartbeatInterval: distributed.heartbeatInterval,
    discoveryInterval: distributed.nodeDiscoveryInterval,
    connectTimeout,
    log: fastify.log
  })
  fastify.decorate('wscRedis', { mode: connections.mode, prefix: redis.prefix, commands: connections.commands, client: connections.commands.nodeClient })
  fastify.decorate('wscRouter', router)
  fastify.addHook('onClose', async () => {
    await router.close()
    await connections.close()
  })
}

/** The `redis-router` plugin (`wsc-redis-router`): decorates `fastify.wscRouter` and `fastify.wscRedis`. */
export const redisRouter = fp(registerRedisRouter, { name: 'wsc-redis-router', fastify: '5.x', dependencies: ['wsc-node-identity'] })
export default redisRouter
