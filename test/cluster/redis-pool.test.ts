import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { Redis } from 'ioredis'
import { loadConfig } from '../../lib/config.js'
import { poolIndex } from '../../lib/redis/command-pool.js'
import { openRedisConnections } from '../../lib/redis/connection.js'
import { build, TestClient, waitFor } from '../helper.js'
import { redisClient, SHARED_REDIS, startNodes, startRedisServer, uniquePrefix } from '../redis-harness.js'
import { connect } from './redis-scenarios.js'

const UNAVAILABLE = { code: 'WSC_ERR_UNAVAILABLE' }

/** `addr → name` of every named connection `CLIENT LIST` shows. */
async function clientNames (redis: Redis): Promise<Map<string, string>> {
  const list = await redis.client('LIST') as string
  const names = new Map<string, string>()
  for (const line of list.split('\n')) {
    const fields = Object.fromEntries(line.trim().split(' ').map((field) => {
      const at = field.indexOf('=')
      return [field.slice(0, at), field.slice(at + 1)]
    }))
    if (fields.addr !== undefined && fields.name !== undefined && fields.name !== '') names.set(fields.addr, fields.name)
  }
  return names
}

const wscNames = async (redis: Redis): Promise<string[]> => [...(await clientNames(redis)).values()].filter((name) => name.startsWith('wsc-')).sort()

/** The first `user-<i>` that the pool of `size` puts on connection `index`. */
function userOn (index: number, size: number): string {
  for (let i = 0; ; i++) if (poolIndex(`user-${i}`, size) === index) return `user-${i}`
}

/**
 * A TCP proxy to a redis-server that holds back the connections whose `CLIENT SETNAME` (sent in the
 * client's handshake) names one of `held`, until {@link release}: those connections stay in their
 * first connection attempt for as long as the test wants.
 */
class HoldingProxy {
  port = 0
  readonly #server: net.Server
  readonly #sockets = new Set<net.Socket>()
  readonly #waiting: Array<() => void> = []
  #held: Set<string>

  private constructor (target: number, held: string[]) {
    this.#held = new Set(held)
    this.#server = net.createServer((client) => this.#accept(client, target))
  }

  static async start (t: TestContext, target: number, held: string[]): Promise<HoldingProxy> {
    const proxy = new HoldingProxy(target, held)
    proxy.#server.listen(0, '127.0.0.1')
    await once(proxy.#server, 'listening')
    proxy.port = (proxy.#server.address() as AddressInfo).port
    t.after(async () => {
      const closed = once(proxy.#server, 'close')
      proxy.#server.close()
      for (const socket of proxy.#sockets) socket.destroy()
      await closed
    })
    return proxy
  }

  /** Lets every held connection through, and every later one. */
  release (): void {
    this.#held.clear()
    for (const forward of this.#waiting.splice(0)) forward()
  }

  #accept (client: net.Socket, target: number): void {
    this.#sockets.add(client)
    client.on('error', () => {}).on('close', () => this.#sockets.delete(client))
    let buffered = Buffer.alloc(0)
    let decided = false
    const forward = (): void => {
      client.off('data', onData)
      if (client.destroyed) return
      const upstream = net.connect(target, '127.0.0.1')
      this.#sockets.add(upstream)
      upstream.on('error', () => client.destroy()).on('close', () => {
        this.#sockets.delete(upstream)
        client.destroy()
      })
      client.on('close', () => upstream.destroy())
      upstream.write(buffered)
      client.pipe(upstream)
      upstream.pipe(client)
    }
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk])
      if (decided) return
      const name = /setname\r\n\$\d+\r\n([^\r\n]*)\r\n/i.exec(buffered.toString('latin1'))?.[1]
      if (name === undefined && buffered.length < 4096) return
      decided = true
      if (name !== undefined && this.#held.has(name)) this.#waiting.push(forward)
      else forward()
    }
    client.on('data', onData)
  }
}

test('redis.pool_size: CLIENT LIST shows that many named command connections per node, plus one Pub/Sub connection', async (t) => {
  for (const poolSize of [4, 2]) {
    await t.test(`pool_size ${poolSize}`, async (sub) => {
      const server = await startRedisServer(sub)
      const prefix = uniquePrefix()
      await startNodes(sub, 1, { prefix, extra: { redis: { addr: server.addr, prefix, poolSize, minIdleConns: poolSize } } })
      assert.deepEqual(await wscNames(redisClient(sub, server.addr)), [...Array.from({ length: poolSize }, (_, i) => `wsc-command-${i}`), 'wsc-pubsub'])
    })
  }
})

test('each user\'s commands go through one pool connection, the node\'s own through connection 0 (seen with MONITOR)', async (t) => {
  const server = await startRedisServer(t)
  const prefix = uniquePrefix()
  const [node] = await startNodes(t, 1, { prefix, heartbeatMs: 200, extra: { redis: { addr: server.addr, prefix, poolSize: 4, minIdleConns: 4 } } })
  assert.ok(node)
  const admin = redisClient(t, server.addr)
  await admin.client('SETNAME', 'test-admin')
  const names = await clientNames(admin)
  const monitor = await redisClient(t, server.addr).monitor()
  t.after(() => { monitor.disconnect() })
  const seen: Array<{ name: string, args: string[] }> = []
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    // Commands a Lua script runs show `lua` as their source: the script's EVALSHA carries the connection.
    if (source !== 'lua') seen.push({ name: names.get(source) ?? source, args })
  })

  const users = [userOn(1, 4), userOn(2, 4)]
  const registryWrites = (): number => seen.filter(({ args }) => args[0]?.toLowerCase() === 'set' && args[1] === `${prefix}nodes:${node.nodeId}`).length
  const before = registryWrites()
  for (const userId of users) {
    const client = await connect(t, node, userId)
    const sent = await Promise.all(Array.from({ length: 20 }, (_, i) => node.app.wsc.sendToUser(userId, { i })))
    await client.take('message', 20)
    client.send({ type: 'ack', seq: sent.at(-1)?.seq })
    await waitFor(async () => await admin.get(`${prefix}acked:{${userId}}`) === String(sent.at(-1)?.seq), 5000, 'the ack to reach Redis')
    await client.close()
    await waitFor(async () => (await node.app.wsc.presence(userId)).length === 0, 5000, 'the presence entry to be removed')
  }
  await waitFor(() => registryWrites() > before, 5000, 'a heartbeat while MONITOR watched')
  // MONITOR reports commands in the order Redis ran them: once it shows this one, it showed every earlier one.
  await admin.echo('monitor-marker')
  await waitFor(() => seen.some((entry) => entry.args[1] === 'monitor-marker'), 5000, 'MONITOR to catch up')

  for (const [i, userId] of users.entries()) {
    const about = seen.filter(({ name }) => name !== 'test-admin').filter(({ args }) => args.some((arg) => arg.includes(`{${userId}}`)) || (args.includes(userId) && args.some((arg) => arg.startsWith(`${prefix}node-users:`))))
    // A script's first run on a connection is an EVAL (ioredis loads it on NOSCRIPT), later ones EVALSHA.
    const commands = new Set(about.map(({ args }) => args[0]?.toLowerCase() === 'eval' ? 'evalsha' : args[0]?.toLowerCase()))
    for (const command of ['hset', 'hdel', 'hgetall', 'sadd', 'srem', 'evalsha']) assert.ok(commands.has(command), `${command} for ${userId} in ${[...commands].join(' ')}`)
    assert.deepEqual(new Set(about.map(({ name }) => name)), new Set([`wsc-command-${i + 1}`]), `every command about ${userId}`)
  }
  const registry = seen.filter(({ args }) => args.some((arg) => arg === `${prefix}nodes:${node.nodeId}` || arg === `${prefix}node-index`))
  assert.ok(registry.length >= 2)
  assert.deepEqual(new Set(registry.map(({ name }) => name)), new Set(['wsc-command-0']), 'registry and index commands')
})

test('1,000 concurrent sends to one user get strictly increasing seqs in send order and arrive in that order on another node', async (t) => {
  const prefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { prefix, extra: { redis: { addr: SHARED_REDIS, prefix, poolSize: 4 }, websocket: { messageBufferSize: 5000 } } })
  assert.ok(a && b)
  const bob = await connect(t, b, 'bob')
  const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => a.app.wsc.sendToUser('bob', i)))
  for (let i = 1; i < results.length; i++) {
    assert.ok((results[i]?.seq as number) > (results[i - 1]?.seq as number), `send ${i} got seq ${results[i]?.seq} after ${results[i - 1]?.seq}`)
  }
  const received = await bob.take('message', 1000, 20_000)
  assert.deepEqual(received.map((frame) => frame.data), results.map((_, i) => i))
  assert.deepEqual(received.map((frame) => frame.seq), results.map((result) => result.seq))
})

test('redis.min_idle_conns: start-up waits for that many connections; a command for a connection still connecting waits for it, in order', async (t) => {
  const server = await startRedisServer(t)
  const proxy = await HoldingProxy.start(t, server.port, ['wsc-command-2', 'wsc-command-3'])
  const admin = redisClient(t, server.addr)
  const { app, url } = await build(t, {
    server: { nodeId: 'pool-min-idle' },
    redis: { addr: `127.0.0.1:${proxy.port}`, prefix: uniquePrefix(), poolSize: 4, minIdleConns: 2 },
    distributed: { heartbeatInterval: 300, nodeDiscoveryInterval: 600 }
  })
  // Started with connections 2 and 3 still held back by the proxy.
  assert.deepEqual(await wscNames(admin), ['wsc-command-0', 'wsc-command-1', 'wsc-pubsub'])
  const status = await waitFor(() => {
    const current = app.wsc.routerStatus()
    return current.up ? current : undefined
  }, 5000, 'the router to be up')
  assert.match(status.detail, /2 of 4 command connections still connecting/)

  const late = userOn(2, 4)
  const early = userOn(1, 4)
  // Its presence write and seq read wait for connection 2 too: no welcome yet.
  const lateClient = new TestClient(url(`token=${late}`))
  t.after(() => lateClient.close())
  let settled = 0
  const lateSends = [0, 1, 2].map((i) => app.wsc.sendToUser(late, i).finally(() => { settled++ }))
  await app.wsc.sendToUser(early, 'not held up')
  assert.equal(settled, 0, 'sends for a user whose connection is still connecting wait for it')

  proxy.release()
  const results = await Promise.all(lateSends)
  assert.ok((results[0]?.seq as number) < (results[1]?.seq as number) && (results[1]?.seq as number) < (results[2]?.seq as number), 'seqs in send order')
  await lateClient.next('welcome')
  assert.deepEqual((await lateClient.take('message', 3)).map((frame) => frame.data), [0, 1, 2])
  assert.deepEqual(await waitFor(async () => {
    const names = await wscNames(admin)
    return names.length === 5 ? names : undefined
  }, 5000, 'every pool connection to be named in CLIENT LIST'), ['wsc-command-0', 'wsc-command-1', 'wsc-command-2', 'wsc-command-3', 'wsc-pubsub'])
  assert.doesNotMatch(app.wsc.routerStatus().detail, /still connecting/)
})

test('a pool connection that does not connect within the connect timeout fails its commands with WSC_ERR_UNAVAILABLE; the others serve', async (t) => {
  const server = await startRedisServer(t)
  const proxy = await HoldingProxy.start(t, server.port, ['wsc-command-1'])
  const config = loadConfig({ env: {}, options: { redis: { addr: `127.0.0.1:${proxy.port}`, poolSize: 2, minIdleConns: 1 } } })
  const connections = openRedisConnections(config.redis, { connectTimeout: 300 })
  t.after(() => connections.close())
  const pool = connections.commands
  await pool.ready(5000)
  const stuck = userOn(1, 2)
  await assert.rejects(Promise.all([pool.forUser(stuck, (client) => client.ping()), pool.forUser(stuck, (client) => client.ping())]), UNAVAILABLE)
  assert.deepEqual(pool.problems(), ['command connection 1 connect'])
  assert.equal(await pool.forUser(userOn(0, 2), (client) => client.ping()), 'PONG')
  // After the timeout it fails fast, like any connection that is down.
  await assert.rejects(pool.forUser(stuck, (client) => client.ping()), UNAVAILABLE)
  // The connection keeps trying; once through, its users are served.
  proxy.release()
  assert.equal(await waitFor(() => pool.forUser(stuck, (client) => client.ping()), 15_000, 'connection 1 to come through'), 'PONG')
  assert.deepEqual(pool.problems(), [])
})

test('Redis listening only after the node began connecting: start-up completes, sends for connections not yet in wait for them', async (t) => {
  // Every connection is refused and retries; start-up finishes once min_idle_conns (1 of 3) are in.
  const server = await startRedisServer(t)
  await server.stop()
  const prefix = uniquePrefix()
  const building = build(t, { server: { nodeId: 'pool-late-redis' }, redis: { addr: server.addr, prefix, poolSize: 3, minIdleConns: 1 }, distributed: { heartbeatInterval: 300 } })
  await server.start()
  const { app } = await building
  const sent = await Promise.all(['u1', 'u2', 'u3', 'u4'].map((userId) => app.wsc.sendToUser(userId, 'hello')))
  assert.ok(sent.every((result) => typeof result.seq === 'number'))
  await waitFor(() => app.wsc.routerStatus().up && !app.wsc.routerStatus().detail.includes('connecting'), 10_000, 'every connection to be ready')
})
