/**
 * The real Redis and MariaDB the durable-delivery tests run against: a throwaway database per test, a
 * unique key prefix per test on the shared Redis, a private redis-server that a test may flush, and a
 * TCP proxy in front of MariaDB that a test can cut and count statements through.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import net, { type AddressInfo, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import { Redis } from 'ioredis'
import mysql, { type Pool } from 'mysql2/promise'
import { within } from './helper.js'
import { deleteKeysWithPrefix, freePort } from './redis-harness.js'

export const MYSQL_HOST = process.env.WSC_TEST_MYSQL_HOST ?? '127.0.0.1'
export const MYSQL_PORT = Number(process.env.WSC_TEST_MYSQL_PORT ?? 3306)
const MYSQL_USER = process.env.WSC_TEST_MYSQL_USER ?? 'root'
const MYSQL_PASSWORD = process.env.WSC_TEST_MYSQL_PASSWORD ?? ''
const REDIS_URL = process.env.WSC_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

const randomName = (): string => randomBytes(6).toString('hex')

export interface TestDatabase {
  name: string
  /** `mysql://…/<name>` for MYSQL_URL / `mysql.url`. */
  url: string
  /** `mysql://…` through another host:port (a proxy) to the same database. */
  urlVia: (port: number, host?: string) => string
  /** A pool on the database for the test's own reads and for lib-level stores. */
  pool: Pool
}

/** Creates a database with a random name, dropped (with its pool ended) in `t.after`. */
export async function testDatabase (t: TestContext): Promise<TestDatabase> {
  const name = `wsc_test_${randomName()}`
  const admin = await mysql.createConnection({ host: MYSQL_HOST, port: MYSQL_PORT, user: MYSQL_USER, password: MYSQL_PASSWORD })
  await admin.query(`CREATE DATABASE \`${name}\``)
  const urlVia = (port: number, host = MYSQL_HOST): string =>
    `mysql://${encodeURIComponent(MYSQL_USER)}:${encodeURIComponent(MYSQL_PASSWORD)}@${host}:${port}/${name}`
  const pool = mysql.createPool({ uri: urlVia(MYSQL_PORT), connectionLimit: 4 })
  t.after(async () => {
    await pool.end()
    await admin.query(`DROP DATABASE IF EXISTS \`${name}\``)
    await admin.end()
  })
  return { name, url: urlVia(MYSQL_PORT), urlVia, pool }
}

/** Counts rows with a query on the test database. */
export async function count (pool: Pool, sql: string, values: unknown[] = []): Promise<number> {
  const [rows] = await pool.query<Array<{ n: number }> & mysql.RowDataPacket[]>(sql, values)
  return Number(rows[0]?.n ?? 0)
}

export interface TestRedis {
  client: Redis
  /** A key prefix no other test uses, ending in `:`. */
  prefix: string
}

/** A client on the shared Redis and a prefix of its own; `t.after` deletes the prefix's keys, never more. */
export async function testRedis (t: TestContext): Promise<TestRedis> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
  await client.connect()
  const prefix = `wsctest:${randomName()}:`
  t.after(async () => {
    await deleteKeysWithPrefix(client, prefix)
    await client.quit()
  })
  return { client, prefix }
}

/** A redis-server of the test's own (no persistence), which the test may flush or `stop()`; stopped in `t.after`. */
export async function privateRedis (t: TestContext): Promise<{ client: Redis, port: number, stop: () => Promise<void> }> {
  const port = await freePort()
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const exited = once(server, 'exit')
  const stop = async (): Promise<void> => {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGTERM')
    await within(exited, 5000, 'redis-server to exit')
  }
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 50 })
  t.after(async () => {
    client.disconnect()
    await stop()
  })
  // Refused until redis-server listens; the client retries every 50 ms until it is ready.
  client.on('error', () => {})
  const ready = new Promise((resolve) => client.once('ready', resolve))
  client.connect().catch(() => {})
  await within(ready, 10_000, `redis-server on port ${port} to answer`)
  return { client, port, stop }
}

/**
 * A TCP proxy to MariaDB that the test controls: `cut()` closes the listener and every connection
 * (clients see the server vanish), `restore()` listens again on the same port. It also records the
 * first bytes of each SQL statement clients send (COM_QUERY), to count round trips.
 */
export class MySqlProxy {
  readonly statements: string[] = []
  #server: net.Server
  #port = 0
  readonly #sockets = new Set<Socket>()

  private constructor () {
    this.#server = this.#createServer()
  }

  /** Starts a proxy on a free port, closed in `t.after`. */
  static async start (t: TestContext): Promise<MySqlProxy> {
    const proxy = new MySqlProxy()
    await proxy.#listen(0)
    t.after(() => proxy.cut())
    return proxy
  }

  get port (): number {
    return this.#port
  }

  /** Statements seen that start with `prefix` (case-insensitive). */
  countStatements (prefix: string): number {
    const wanted = prefix.toLowerCase()
    return this.statements.filter((sql) => sql.toLowerCase().startsWith(wanted)).length
  }

  #createServer (): net.Server {
    return net.createServer((client) => {
      const server = net.connect(MYSQL_PORT, MYSQL_HOST)
      this.#sockets.add(client).add(server)
      const drop = (): void => {
        client.destroy()
        server.destroy()
        this.#sockets.delete(client)
        this.#sockets.delete(server)
      }
      client.on('error', drop).on('close', drop)
      server.on('error', drop).on('close', drop)
      const record = this.#statementRecorder()
      client.on('data', record)
      client.pipe(server)
      server.pipe(client)
    })
  }

  /**
   * A parser of one client's packets (3-byte length, sequence id, payload): a packet with sequence id 0
   * starting with 0x03 is a COM_QUERY, whose first 120 bytes of SQL it records.
   */
  #statementRecorder (): (chunk: Buffer) => void {
    let pending = Buffer.alloc(0)
    let skip = 0
    return (chunk) => {
      let data = chunk
      if (skip > 0) {
        const n = Math.min(skip, data.length)
        skip -= n
        data = data.subarray(n)
      }
      const buffer = pending.length > 0 ? Buffer.concat([pending, data]) : data
      let at = 0
      while (buffer.length - at >= 5) {
        const end = at + 4 + buffer.readUIntLE(at, 3)
        const shown = Math.min(end, at + 5 + 120)
        if (buffer.length < shown) break
        if (buffer[at + 3] === 0 && buffer[at + 4] === 0x03) this.statements.push(buffer.toString('utf8', at + 5, shown).trimStart())
        if (end > buffer.length) {
          skip = end - buffer.length
          at = buffer.length
          break
        }
        at = end
      }
      pending = Buffer.from(buffer.subarray(at))
    }
  }

  async #listen (port: number): Promise<void> {
    this.#server.listen(port, '127.0.0.1')
    await once(this.#server, 'listening')
    this.#port = (this.#server.address() as AddressInfo).port
  }

  /** MariaDB vanishes: no new connections, every open one closed. */
  async cut (): Promise<void> {
    const closed = this.#server.listening ? once(this.#server, 'close') : Promise.resolve()
    this.#server.close()
    for (const socket of this.#sockets) socket.destroy()
    this.#sockets.clear()
    await closed
  }

  /** MariaDB is back on the same port. */
  async restore (): Promise<void> {
    this.#server = this.#createServer()
    await this.#listen(this.#port)
  }
}
