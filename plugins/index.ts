import { existsSync, readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import { loadConfig, type WscConfig, type WscConfigInput } from '../lib/config.js'
import { ConfigError } from '../lib/errors.js'
import type { MessageStore } from '../lib/message-store.js'
import type { Router } from '../lib/router.js'
import type { AuthorizeJoin, AuthorizePublish } from '../lib/wsc-node.js'
import mysqlStore from './mysql-store.js'
import nodeIdentity from './node-identity.js'
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
  const wantsRedis = config.redis.addr !== '' || config.redis.sentinels.length > 0 || config.redis.clusterNodes.length > 0
  if (router === undefined && wantsRedis && config.distributed.enabled) {
    throw new ConfigError('config: redis.addr is set but Redis routing is not available in this version; unset REDIS_ADDR to run on one node')
  }
  fastify.decorate('wscConfig', config)
  await fastify.register(nodeIdentity, { nodeId, nodeIp: config.server.nodeIp, nodePort: config.server.nodePort })
  let store = messageStore
  if (store === undefined && (config.mysql.url !== '' || config.mysql.host !== '')) {
    // Registered before the WebSocket route, so onClose closes sockets before the store and its pool.
    await fastify.register(mysqlStore, { config })
    store = fastify.wscStore
  }
  await fastify.register(websocket, { config, authenticate, authorizeJoin, authorizePublish, router, store, version })
}

export default fp(wsc, { name: 'fastify-wsc', fastify: '5.x' })
export { wsc }
export type { Authenticate, Wsc } from './websocket.js'
export type { WscConfig, WscConfigInput } from '../lib/config.js'
export type { AuthResult, AuthorizeJoin, AuthorizeJoinContext, AuthorizePublish, AuthorizePublishContext, ConnectEvent, DisconnectEvent, MessageEvent, SendOptions, SendResult } from '../lib/wsc-node.js'
export type { NodeInfo, PresenceEntry, Router } from '../lib/router.js'
export type { MessageStore, StoredMessage, StoreStatus } from '../lib/message-store.js'
export type { Target } from '../lib/protocol.js'
export { CloseCode, ErrorCode } from '../lib/protocol.js'
export * as errors from '../lib/errors.js'
export { extractBearerToken, BEARER_SUBPROTOCOL_PREFIX, PROTOCOL_NAME } from '../lib/bearer-token.js'
