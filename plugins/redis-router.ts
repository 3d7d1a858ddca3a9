import type { Cluster, Redis } from 'ioredis'
import fp from 'fastify-plugin'
import { OptionError } from '../lib/errors.js'
import type { RedisCommandPool } from '../lib/redis-command-pool.js'
import { openRedisConnections } from '../lib/redis-connection.js'
import { RedisRouter } from '../lib/redis-router.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Command connection 0 (standalone/Sentinel `Redis` or `Cluster`), the one for node-scoped commands; use it for commands of your own. */
    wscRedis: Redis | Cluster
    /** Every command connection (`redis.pool_size`), for Redis users that keep one user's commands on one connection (the message stores). */
    wscRedisPool: RedisCommandPool
    /** Cross-node routing over Redis: registry, presence, Pub/Sub, loopback probe. */
    wscRouter: RedisRouter
  }
}

/**
 * Connects Redis as `fastify.wscConfig.redis` says (standalone, Sentinel or Cluster) and builds the
 * Redis router that the WebSocket plugin starts under this node's identity. The clients close in
 * `onClose`, after the WebSocket plugin (registered later) has closed its sockets and the router.
 */
export default fp(async function redisRouter (fastify) {
  if (!fastify.hasDecorator('wscConfig')) throw new OptionError('wscConfig', 'wsc-redis-router is registered by fastify-wsc, which resolves the configuration')
  const config = fastify.wscConfig
  const connections = openRedisConnections(config.redis)
  const router = new RedisRouter({
    mode: connections.mode,
    commands: connections.commands,
    subscriber: connections.subscriber,
    prefix: config.redis.prefix,
    heartbeatInterval: config.distributed.heartbeatInterval,
    discoveryInterval: config.distributed.nodeDiscoveryInterval,
    log: fastify.log
  })
  fastify.decorate<Redis | Cluster>('wscRedis', connections.commands.nodeClient)
  fastify.decorate('wscRedisPool', connections.commands)
  fastify.decorate('wscRouter', router)
  fastify.addHook('onClose', async () => {
    await router.close()
    await connections.close()
  })
}, { name: 'wsc-redis-router', fastify: '5.x', dependencies: ['wsc-node-identity'] })
