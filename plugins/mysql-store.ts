import type { FastifyInstance } from 'fastify'
import fastifyMysql, { type MySQLPromisePool } from '@fastify/mysql'
import fp from 'fastify-plugin'
import type { PoolOptions } from 'mysql2/promise'
import type { WscConfig } from '../lib/config.js'
import type { MessageStore } from '../lib/message-store.js'
import { MySqlMessageStore } from '../lib/mysql-message-store.js'
import type { MigrationResult } from '../lib/mysql-schema.js'
import { RedisMySqlMessageStore } from '../lib/redis-mysql-message-store.js'
import type { RedisClient, RedisCommandPool } from '../lib/redis-command-pool.js'

export interface MySqlStorePluginOptions {
  /** The resolved configuration: `mysql.*` for the pool, `store.*` for batching and retention. */
  config: WscConfig
  /** More mysql2 pool options (TLS, timeouts…), applied over those from `config.mysql`; never mutated. */
  pool?: PoolOptions | undefined
  /** The router's Redis command connections: with them, recent messages are also kept in a Redis window per user. */
  redis?: RedisCommandPool | RedisClient | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The durable message store (MySQL, with a Redis window when Redis is configured). */
    wscStore: MessageStore
  }
}

/** mysql2 pool options from `mysql.*`: `mysql.url` through mysql2's `uri` (so the pool options still apply). */
function poolOptions (mysql: WscConfig['mysql'], extra: PoolOptions | undefined): PoolOptions {
  const target: PoolOptions = mysql.url !== ''
    ? { uri: mysql.url }
    : { host: mysql.host, port: mysql.port, user: mysql.user, password: mysql.password, database: mysql.database }
  return { ...target, connectionLimit: mysql.poolSize, connectTimeout: 5000, enableKeepAlive: true, ...extra }
}

/**
 * The MySQL message store: a pool through @fastify/mysql (in its own encapsulated context, so the
 * app may register @fastify/mysql for itself), the schema migrated before the app is ready, the store
 * decorated as `fastify.wscStore` and closed (queued messages written) before the pool ends.
 */
async function mysqlStore (fastify: FastifyInstance, opts: MySqlStorePluginOptions): Promise<void> {
  const { config, redis } = opts
  let db: MySQLPromisePool | undefined
  await fastify.register(async function wscMysqlPool (child) {
    // @fastify/mysql deletes keys from the object it is given: it gets a fresh one.
    await child.register(fastifyMysql, { ...poolOptions(config.mysql, opts.pool), promise: true })
    db = (child as unknown as { mysql: MySQLPromisePool }).mysql
  })
  if (db === undefined) throw new Error('@fastify/mysql registered no pool')
  const storeOptions = {
    batchSize: config.store.batchSize,
    retentionAge: config.store.retentionAge,
    retentionCount: config.store.retentionCount,
    cleanupInterval: config.store.cleanupInterval
  }
  const store: MessageStore & { start: () => Promise<MigrationResult> } = redis === undefined
    ? new MySqlMessageStore(db.pool, storeOptions)
    : new RedisMySqlMessageStore(redis, db.pool, { ...storeOptions, prefix: config.redis.prefix, inboxSize: config.store.inboxSize })
  const migration = await store.start()
  fastify.log.info({ schemaVersion: migration.version, applied: migration.applied }, 'mysql message store ready')
  fastify.decorate('wscStore', store)
  fastify.addHook('onClose', async () => store.close())
}

export default fp(mysqlStore, { name: 'wsc-mysql-store', fastify: '5.x' })
