/**
 * The `mysql-store` plugin: finds or opens the MySQL pool, migrates the schema, decorates
 * `fastify.wscStore` (MySQL, with the Redis window when `redis-router` is registered) and closes it on
 * `onClose`.
 */
import type { FastifyInstance } from 'fastify'
import fastifyMysql, { type MySQLPool, type MySQLPromisePool } from '@fastify/mysql'
import fp from 'fastify-plugin'
import type { Pool as CallbackPool } from 'mysql2'
import type { Pool, PoolOptions } from 'mysql2/promise'
import { resolveSection, type ConfigSectionInput, type WscConfig } from '../lib/config.js'
import { errorMessage, OptionError, UnavailableError } from '../lib/errors.js'
import type { MessageStore } from '../lib/store/message-store.js'
import { MySqlMessageStore } from '../lib/store/mysql/mysql-message-store.js'
import type { MigrationResult } from '../lib/store/mysql/schema.js'
import { RedisMySqlMessageStore } from '../lib/store/redis-mysql-message-store.js'

/** A MySQL pool the app already has: `fastify.mysql` of @fastify/mysql (with or without `promise`), or a mysql2 pool. */
export type MySqlPoolSource = MySQLPool | MySQLPromisePool | Pool | CallbackPool

/**
 * Options of the `mysql-store` plugin: where the pool comes from (`client`, or the `mysql.*` keys:
 * `url`, or `host`/`port`/`user`/`password`/`database`, with `poolSize`), and the `store.*` keys
 * (`batchSize`, `retentionAge`, `retentionCount`, `maxInboxBytes`, `cleanupInterval`, and `inboxSize` for the Redis window).
 */
export interface MySqlStorePluginOptions extends ConfigSectionInput<'mysql'>, ConfigSectionInput<'store'> {
  /**
   * A pool the app already has; not closed by the plugin. Default: `fastify.mysql` when @fastify/mysql
   * is registered and neither `url` nor `host` is given.
   */
  client?: MySqlPoolSource | undefined
  /** More mysql2 pool options (TLS, timeouts…) for a pool of the plugin's own, applied over `mysql.*`; never mutated. */
  poolOptions?: PoolOptions | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The store of user messages: numbers them and keeps them for `since` replay (MySQL with `mysql-store`, else Redis or memory). */
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

/** Where MySQL is, for an operator (never the password): `host:port/database`, or `the app's pool`. */
function mysqlEndpoint (mysql: WscConfig['mysql']): string {
  if (mysql.url !== '') {
    try {
      const url = new URL(mysql.url)
      return `${url.hostname}:${url.port === '' ? 3306 : url.port}${url.pathname}`
    } catch {
      return 'mysql.url (unparsable)'
    }
  }
  return mysql.host === '' ? 'the app\'s pool' : `${mysql.host}:${mysql.port}/${mysql.database}`
}

/**
 * A start-up that could not reach or use MySQL (a driver error: `ECONNREFUSED`, `ER_ACCESS_DENIED_ERROR`…),
 * as `WSC_ERR_UNAVAILABLE` naming where and why; other errors pass through.
 */
function unreachable (mysql: WscConfig['mysql'], err: unknown): unknown {
  const code = (err as { code?: unknown } | undefined)?.code
  if (typeof code !== 'string' || /^(WSC|FST)_ERR_/.test(code)) return err
  return new UnavailableError(`MySQL ${mysqlEndpoint(mysql)}: ${errorMessage(err)} (${code})`, { cause: err })
}

/** The promise API over whatever pool the app has: @fastify/mysql's decorator and mysql2's promise pool both hold the core pool. */
function promisePool (source: MySqlPoolSource): Pool {
  let core: unknown = source
  while (typeof core === 'object' && core !== null && 'pool' in core && typeof core.pool === 'object' && core.pool !== null) core = core.pool
  const pool = core as Partial<CallbackPool>
  if (typeof pool.promise !== 'function' || typeof pool.getConnection !== 'function') {
    throw new OptionError('client', 'wsc-mysql-store needs a MySQL pool (@fastify/mysql registered without type: "connection", or a mysql2 pool)')
  }
  return pool.promise()
}

/** A pool of the plugin's own through @fastify/mysql, in a context of its own so it leaves the app's `fastify.mysql` free. */
async function ownPool (fastify: FastifyInstance, options: PoolOptions): Promise<Pool> {
  let db: MySQLPromisePool | undefined
  await fastify.register(async function wscMysqlPool (child) {
    // @fastify/mysql deletes keys from the object it is given: it gets a fresh one.
    await child.register(fastifyMysql, { ...options, promise: true })
    db = (child as unknown as { mysql: MySQLPromisePool }).mysql
  })
  if (db === undefined) throw new Error('@fastify/mysql registered no pool')
  return db.pool
}

/**
 * The MySQL Service: persists user messages so users who were offline get them. The pool is the app's
 * (`client`, or `fastify.mysql`) or its own; the schema is migrated before the app is ready; the store is
 * decorated as `fastify.wscStore` and closed (queued messages written) before any pool ends. With the
 * `redis-router` registered first, recent messages are also kept in a Redis window per user.
 */
async function registerMysqlStore (fastify: FastifyInstance, options: MySqlStorePluginOptions): Promise<void> {
  const { client, poolOptions: extraPoolOptions, url, host, port, user, password, database, poolSize, ...storeOptions } = options
  const mysql = resolveSection('mysql', { url, host, port, user, password, database, poolSize }, 'wsc-mysql-store')
  const store = resolveSection('store', storeOptions, 'wsc-mysql-store')
  const connectionGiven = mysql.url !== '' || mysql.host !== ''
  if (client !== undefined && connectionGiven) throw new OptionError('client', 'wsc-mysql-store takes either client or url/host, not both')
  let pool: Pool
  if (client !== undefined) {
    pool = promisePool(client)
  } else if (connectionGiven) {
    pool = await ownPool(fastify, poolOptions(mysql, extraPoolOptions)).catch((err: unknown) => { throw unreachable(mysql, err) })
  } else if (fastify.hasDecorator('mysql')) {
    pool = promisePool((fastify as unknown as { mysql: MySqlPoolSource }).mysql)
  } else {
    throw new OptionError('client', 'wsc-mysql-store needs a MySQL pool: register @fastify/mysql before it, or pass client, url or host')
  }
  const settings = { batchSize: store.batchSize, retentionAge: store.retentionAge, retentionCount: store.retentionCount, maxInboxBytes: store.maxInboxBytes, cleanupInterval: store.cleanupInterval }
  const messageStore: MessageStore & { start: () => Promise<MigrationResult> } = fastify.hasDecorator('wscRedis')
    ? new RedisMySqlMessageStore(fastify.wscRedis.commands, pool, { ...settings, prefix: fastify.wscRedis.prefix, inboxSize: store.inboxSize })
    : new MySqlMessageStore(pool, settings)
  const migration = await messageStore.start().catch((err: unknown) => { throw unreachable(mysql, err) })
  fastify.log.info({ schemaVersion: migration.version, applied: migration.applied }, 'mysql message store ready')
  fastify.decorate('wscStore', messageStore)
  fastify.addHook('onClose', async () => messageStore.close())
}

/** The `mysql-store` plugin (`wsc-mysql-store`): decorates `fastify.wscStore`. */
export const mysqlStore = fp(registerMysqlStore, { name: 'wsc-mysql-store', fastify: '5.x' })
export default mysqlStore
