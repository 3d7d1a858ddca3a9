/** The `wsc` composition plugin, and everything the package exports. */
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { resolveConfig, type ConfigSectionInput, type WscConfigInput } from '../lib/config.js'
import type { MessageStore } from '../lib/store/message-store.js'
import { isRedisConfigured } from '../lib/redis/connection.js'
import type { Router } from '../lib/router/router.js'
import type { AuthorizeJoin, AuthorizePublish } from '../lib/node/client-frames.js'
import health from './health.js'
import metrics, { type MetricsPluginOptions } from './metrics.js'
import mysqlStore, { type MySqlStorePluginOptions } from './mysql-store.js'
import nodeIdentity from './node-identity.js'
import redisRouter, { type RedisRouterPluginOptions } from './redis-router.js'
import websocket, { type Authenticate } from './websocket.js'

/**
 * Options of `fastify.register(wsc, options)`: the hooks, and any configuration key (camelCase, by
 * section: `websocket: { maxConnections: 5000 }`) — so `loadConfig({ env: process.env })` can be spread
 * in. Plus what the app already has: `redis.client`, `mysql.client`, `metrics.registry`.
 */
export interface WscOptions extends Omit<WscConfigInput, 'redis' | 'mysql' | 'metrics'> {
  /** Redis for cross-node routing (`redis.*`): `client` (an ioredis client of the app's) or `addr`, `sentinels`, `clusterNodes`. */
  redis?: (ConfigSectionInput<'redis'> & Pick<RedisRouterPluginOptions, 'client' | 'closeClient'>) | undefined
  /** MySQL to persist user messages (`mysql.*`): `client` (a pool of the app's, e.g. `fastify.mysql`) or `url`/`host`. */
  mysql?: (ConfigSectionInput<'mysql'> & Pick<MySqlStorePluginOptions, 'client' | 'poolOptions'>) | undefined
  /** Prometheus metrics (`metrics.*`): a server of their own only with `port`. */
  metrics?: (ConfigSectionInput<'metrics'> & Pick<MetricsPluginOptions, 'registry' | 'processMetrics' | 'routeMetrics'>) | undefined
  /** Who opens a connection; runs before the upgrade. Default: every connection is an anonymous user. */
  authenticate?: Authenticate | undefined
  /** Whether a connection may join a room. Default: any room. */
  authorizeJoin?: AuthorizeJoin | undefined
  /** Whether a connection may publish. Default: to rooms it has joined, never to a user. */
  authorizePublish?: AuthorizePublish | undefined
  /** A cross-node router of your own (advanced); default: Redis when configured, else in memory. */
  router?: Router | undefined
  /** A message store of your own (advanced); default: MySQL when configured, else Redis, else in memory. */
  messageStore?: MessageStore | undefined
}

/**
 * fastify-wsc in one call: registers the capability plugins in the order of the Kubernetes topology —
 * the pod (`node-identity`), the Redis Service (`redis-router`, when Redis is configured), the MySQL
 * Service (`mysql-store`, when MySQL is configured), the container port behind the Ingress
 * (`websocket`), the kubelet's probes (`health`) and Prometheus (`metrics`).
 */
async function registerWsc (fastify: FastifyInstance, options: WscOptions): Promise<void> {
  const {
    authenticate, authorizeJoin, authorizePublish, router, messageStore,
    redis: { client: redisClient, closeClient, ...redisKeys } = {},
    mysql: { client: mysqlClient, poolOptions, ...mysqlKeys } = {},
    metrics: { registry, processMetrics, routeMetrics, ...metricsKeys } = {},
    ...sections
  } = options
  const config = resolveConfig({ ...sections, redis: redisKeys, mysql: mysqlKeys, metrics: metricsKeys })

  await fastify.register(nodeIdentity, config.server)
  // Stores and routers first, the WebSocket route last: onClose (reverse order) closes sockets before pools.
  if (router === undefined && config.distributed.enabled && (redisClient !== undefined || isRedisConfigured(config.redis))) {
    const { heartbeatInterval, nodeDiscoveryInterval } = config.distributed
    await fastify.register(redisRouter, { ...config.redis, client: redisClient, closeClient, heartbeatInterval, nodeDiscoveryInterval })
  }
  if (messageStore === undefined && (mysqlClient !== undefined || config.mysql.url !== '' || config.mysql.host !== '')) {
    await fastify.register(mysqlStore, { ...config.mysql, ...config.store, client: mysqlClient, poolOptions })
  }
  const { window, delay, reconnectJitter } = config.drain
  await fastify.register(websocket, {
    ...config.websocket,
    inbox: config.store,
    drain: { window, delay, reconnectJitter },
    authenticate,
    authorizeJoin,
    authorizePublish,
    router,
    store: messageStore
  })
  const { enabled: healthEnabled, ...probes } = config.health
  if (healthEnabled) await fastify.register(health, probes)
  if (config.metrics.enabled) await fastify.register(metrics, { port: config.metrics.port, host: config.metrics.host, registry, processMetrics, routeMetrics })
}

/** The umbrella plugin (`fastify-wsc`). */
export const wsc = fp(registerWsc, { name: 'fastify-wsc', fastify: '5.x' })
export default wsc

export { nodeIdentity, redisRouter, mysqlStore, websocket, health, metrics }
export { bearer, type VerifiedToken, type VerifyToken } from './bearer.js'
export type { NodeIdentityOptions, NodeIdentityState } from './node-identity.js'
export type { RedisRouterPluginOptions, WscRedis } from './redis-router.js'
export type { MySqlPoolSource, MySqlStorePluginOptions } from './mysql-store.js'
export type { Authenticate, WebsocketPluginOptions } from './websocket.js'
export type { Wsc } from '../lib/node/public-api.js'
export { serializeRequest, RETRY_AFTER_SECONDS } from './websocket.js'
export type { HealthPluginOptions, ReadinessBody } from './health.js'
export type { MetricsPluginOptions, WscMetrics } from './metrics.js'
export { loadConfig, resolveConfig, CONFIG_KEYS, type ConfigKey, type ConfigSectionInput, type LoadConfigInput, type WscConfig, type WscConfigInput } from '../lib/config.js'
export type { NodeIdentity, NodeIdSource } from '../lib/node-identity.js'
export type { AuthResult, ConnectEvent, DisconnectEvent, DrainOptions, WscEvents } from '../lib/node/wsc-node.js'
export type { AuthorizeJoin, AuthorizeJoinContext, AuthorizePublish, AuthorizePublishContext, MessageEvent } from '../lib/node/client-frames.js'
export type { SendOptions, SendResult } from '../lib/node/sender.js'
export type { NodeHealth, ReadinessCheck } from '../lib/readiness.js'
export type { FrameKind, TargetKind, WscObserver } from '../lib/node/observer.js'
export type { NodeInfo, PresenceEntry, Router, RouterStatus } from '../lib/router/router.js'
export type { AppendOptions, Durability, MessageStore, StoredMessage, StoreStatus, StreamHead } from '../lib/store/message-store.js'
export type { Target } from '../lib/protocol.js'
export { CloseCode, ErrorCode } from '../lib/protocol.js'
export * as errors from '../lib/errors.js'
export { extractBearerToken, redactHeaders, redactToken, BEARER_SUBPROTOCOL_PREFIX, PROTOCOL_NAME } from '../lib/bearer-token.js'
