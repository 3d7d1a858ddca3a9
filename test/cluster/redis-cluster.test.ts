import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Cluster, Redis } from 'ioredis'
import { loadConfig } from '../../lib/config.js'
import { openRedisConnections } from '../../lib/redis/connection.js'
import { startNodes, startRedisCluster, uniquePrefix, type RedisClusterHandle, type TestNode } from '../redis-harness.js'
import { broadcastEverywhere, connect, interestOnly, kickAndDisconnect, presenceAndNodesAgree, roomAcrossNodes, userToUser } from './redis-scenarios.js'
import { waitFor } from '../helper.js'

function direct (t: import('node:test').TestContext, addr: string): Redis {
  const [host, port] = addr.split(':')
  const client = new Redis({ host, port: Number(port), maxRetriesPerRequest: 1 })
  client.on('error', () => {})
  t.after(() => { client.disconnect() })
  return client
}

test('Redis Cluster (3 masters, sharded Pub/Sub)', async (t) => {
  const cluster: RedisClusterHandle = await startRedisCluster(t)
  assert.equal(cluster.masters.length, 3)
  const three = (sub: import('node:test').TestContext, prefix = uniquePrefix()): Promise<TestNode[]> =>
    startNodes(sub, 3, { prefix, clusterNodes: cluster.seeds })

  await t.test('a user reaches every device of another user on other nodes', async (sub) => {
    await userToUser(sub, await three(sub))
  })
  await t.test('a room spans three nodes; server-side joinRoom/leaveRoom reach every device', async (sub) => {
    await roomAcrossNodes(sub, await three(sub))
  })
  await t.test('broadcast reaches every connection on every node', async (sub) => {
    await broadcastEverywhere(sub, await three(sub))
  })
  await t.test('kick and disconnect close connections on other nodes', async (sub) => {
    await kickAndDisconnect(sub, await three(sub))
  })
  await t.test('presence, isOnline, onlineCount and nodes() agree on every node', async (sub) => {
    await presenceAndNodesAgree(sub, await three(sub))
  })
  await t.test('a node hosting none of a room or user receives none of its traffic', async (sub) => {
    await interestOnly(sub, await three(sub))
  })

  await t.test('pool_size Cluster clients: concurrent sends to one user keep their order; masters see the named connections', async (sub) => {
    const nodes = await startNodes(sub, 2, { prefix: uniquePrefix(), clusterNodes: cluster.seeds, extra: { websocket: { messageBufferSize: 5000 } } })
    const [a, b] = nodes
    assert.ok(a && b)
    const bob = await connect(sub, b, 'bob')
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => a.app.wsc.sendToUser('bob', i)))
    for (let i = 1; i < results.length; i++) assert.ok((results[i]?.seq as number) > (results[i - 1]?.seq as number), `send ${i}: seq ${results[i]?.seq} after ${results[i - 1]?.seq}`)
    assert.deepEqual((await bob.take('message', 500, 20_000)).map((frame) => frame.data), results.map((_, i) => i))
    const names = new Set<string>()
    for (const master of cluster.masters) {
      for (const match of (await direct(sub, master.addr).client('LIST') as string).matchAll(/ name=(wsc-command-\d+) /g)) names.add(match[1] as string)
    }
    assert.deepEqual([...names].sort(), ['wsc-command-0', 'wsc-command-1', 'wsc-command-2', 'wsc-command-3'], 'redis.pool_size defaults to 4 Cluster clients')
  })

  await t.test('a fresh command connection keeps one user\'s commands in order from its first command on', async (sub) => {
    // ioredis connects a Cluster client to each master lazily; without an offline queue, commands sent while
    // that connection was being made went to another master and came back, MOVED, after later ones.
    const seeds = cluster.seeds.map((seed) => ({ host: '127.0.0.1', port: Number(seed.split(':')[1]) }))
    const listener = new Cluster(seeds, { shardedSubscribers: true })
    sub.after(() => { listener.disconnect() })
    const got: number[] = []
    listener.on('smessage', (_channel: string, message: string) => got.push(Number(message)))
    const channel = `${uniquePrefix()}ordered`
    await listener.ssubscribe(channel)
    const connections = openRedisConnections(loadConfig({ env: {}, options: { redis: { clusterNodes: cluster.seeds, poolSize: 1 } } }).redis)
    sub.after(() => connections.close())
    await connections.commands.ready(10_000)
    await Promise.all(Array.from({ length: 200 }, (_, i) => connections.commands.forUser('ann', (client) => client.spublish(channel, String(i)))))
    await waitFor(() => got.length === 200, 5000, '200 shard messages')
    assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i))
  })

  await t.test('a message reaches a user whose keys live on each shard; channels are shard channels', async (sub) => {
    const prefix = uniquePrefix()
    const nodes = await three(sub, prefix)
    const masters = cluster.masters.map((master) => ({ ...master, client: direct(sub, master.addr) }))
    const first = masters[0]
    assert.ok(first)
    // One user per master: the first candidate whose presence key hashes into that master's slots.
    const users: Array<{ userId: string, master: typeof first }> = []
    for (let i = 0; users.length < masters.length && i < 1000; i++) {
      const userId = `shard-user-${i}`
      const slot = Number(await first.client.cluster('KEYSLOT', `${prefix}presence:{${userId}}`))
      const master = masters.find((m) => m.ranges.some(([start, end]) => slot >= start && slot <= end))
      if (master !== undefined && !users.some((user) => user.master === master)) users.push({ userId, master })
    }
    assert.equal(users.length, 3)
    for (const [i, { userId, master }] of users.entries()) {
      const home = nodes[i] as TestNode
      const sender = nodes[(i + 1) % nodes.length] as TestNode
      const client = await connect(sub, home, userId)
      // The presence hash lives on that master: it answers without a MOVED redirection.
      assert.deepEqual(await master.client.hgetall(`${prefix}presence:{${userId}}`), { [client.connectionId]: home.nodeId })
      const sent = await sender.app.wsc.sendToUser(userId, { shard: master.addr })
      const message = await client.next('message')
      assert.equal(message.id, sent.id)
      assert.deepEqual(message.data, { shard: master.addr })
    }
    const shardChannels = new Set<string>()
    const classic = new Set<string>()
    for (const master of masters) {
      for (const channel of await master.client.pubsub('SHARDCHANNELS', `${prefix}*`) as string[]) shardChannels.add(channel)
      for (const channel of await master.client.pubsub('CHANNELS', `${prefix}*`) as string[]) classic.add(channel)
    }
    assert.deepEqual([...shardChannels].sort(), [`${prefix}broadcast`, ...nodes.map((node) => `${prefix}node:${node.nodeId}`)].sort())
    assert.equal(classic.size, 0, 'Cluster mode uses sharded Pub/Sub only')
    for (const node of nodes) {
      const status = node.app.wsc.routerStatus()
      assert.equal(status.up, true, status.detail)
      assert.match(status.detail, /cluster/)
    }
  })
})
