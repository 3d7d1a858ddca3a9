import { existsSync, readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import { loadConfig, type WscConfig, type WscConfigInput } from '../lib/config.js'
import type { MessageStore } from '../lib/message-store.js'
import { isRedisConfigured } from '../lib/redis-connection.js'
import type { RedisCommandPool } from '../lib/redis-command-pool.js'
import { RedisMessageStore } from '../lib/redis-message-store.js'
import type { Router } from '../lib/router.js'
import type { AuthorizeJoin, AuthorizePublish } from '../lib/wsc-node.js'
import health from './health.js'
import metrics from './metrics.js'
import mysqlStore from './mysql-store.js'
import nodeIdentity from './node-identity.js'
import redisRouter from './redis-router.js'
import websocket, { type Authenticate } from './websocket.js'

/** Options of `fastify.register(wsc, options)`: hooks, plus any configuration key (camelCase) to override. */
export interface WscOptions extends WscConfigInput {
  /** Explicit node id; overrides POD_NAME, HOSTNAME, NODE_ID and ip-port. */
  nodeId?: string
  /** Path of config.yaml; default: the WSC_CONFIG env var; none when neither is set. */
  configFile?: string
  /** Who opens a connection; runs before the upgrade. Default: every connection is an anonymous user. */
  authenticate?: Authenticate
  /** Whether a connection may join a room. Default: any room. */
  authorizeJoin?: AuthorizeJoin
  /** Whether a connection may publish. Default: to rooms it has joined, and to any user. */
  authorizePublish?: AuthorizePublish
  /** A custom cross-node router (advanced); default: chosen from the configuration. */
  router?: Router
  /** A custom message store (advanced); default: chosen from the configuration. */
  messageStore?: MessageStore
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The resolved configuration (options > env > config.yaml > defaults). */
    wscConfig: WscConfig
  }
}

// The package root is one level up from plugins/ in the sources and two levels up from dist/plugins/.
const packageJson = [new URL('../package.json', import.meta.url), new URL('../../package.json', import.meta.url)].find((url) => existsSync(url))
const { version } = JSON.parse(readFileSync(packageJson ?? new URL('../package.json', import.meta.url), 'utf8')) as { version: string }

/** fastify-wsc: registers node identity, routing, storage and the `/ws` route from one options object. */
async function wsc (fastify: import('fastify').FastifyInstance, opts: WscOptions): Promise<void> {
  const { nodeId, configFile, authenticate, authorizeJoin, authorizePublish, router, messageStore, ...configOptions } = opts
  const config = loadConfig({ options: configOptions, file: configFile })
  fastify.decorate('wscConfig', config)
  await fastify.register(nodeIdentity, { nodeId, nodeIp: config.server.nodeIp, nodePort: config.server.nodePort })
  // Stores and routers first, the WebSocket route last: onClose (reverse order) closes sockets before pools.
  let crossNode = router
  let redis: RedisCommandPool | undefined
  if (crossNode === undefined && isRedisConfigured(config.redis) && config.distributed.enabled) {
    await fastify.register(redisRouter)
    crossNode = fastify.wscRouter
    redis = fastify.wscRedisPool
  }
  let store = messageStore
  if (store === undefined && (config.mysql.url !== '' || config.mysql.host !== '')) {
    await fastify.register(mysqlStore, { config, redis })
    store = fastify.wscStore
  } else if (store === undefined && redis !== undefined) {
    store = new RedisMessageStore(redis, { prefix: config.redis.prefix, inboxSize: config.store.inboxSize })
  }
  await fastify.register(websocket, { config, authenticate, authorizeJoin, authorizePublish, router: crossNode, store, version })
  // They observe the node the websocket plugin made; their onClose runs first, after the drain.
  if (config.metrics.enabled) await fastify.register(metrics, { config })
  if (config.health.enabled) await fastify.register(health, { config })
}

export default fp(wsc, { name: 'fastify-wsc', fastify: '5.x' })
export { wsc }
export type { Authenticate, Wsc } from './websocket.js'
export { serializeRequest } from './websocket.js'
export type { WscConfig, WscConfigInput } from '../lib/config.js'
export type { AuthResult, AuthorizeJoin, AuthorizeJoinContext, AuthorizePublish, AuthorizePublishContext, ConnectEvent, DisconnectEvent, DrainOptions, MessageEvent, SendOptions, SendResult } from '../lib/wsc-node.js'
export type { NodeHealth, ReadinessCheck } from '../lib/readiness.js'
export type { FrameKind, TargetKind, WscObserver } from '../lib/observer.js'
export type { ReadinessBody } from './health.js'
export type { WscMetrics } from './metrics.js'
export type { NodeInfo, PresenceEntry, Router, RouterStatus } from '../lib/router.js'
export type { Durability, MessageStore, StoredMessage, StoreStatus } from '../lib/message-store.js'
export type { Target } from '../lib/protocol.js'
export { CloseCode, ErrorCode } from '../lib/protocol.js'
export * as errors from '../lib/errors.js'
export { extractBearerToken, redactToken, BEARER_SUBPROTOCOL_PREFIX, PROTOCOL_NAME } from '../lib/bearer-token.js'
