/**
 * Redis Cluster sharded Pub/Sub under churn: after any number of reconnects a node's subscriptions equal
 * its interest — no channel subscribed twice, none it left coming back — as the masters themselves
 * report them (PUBSUB SHARDNUMSUB, CLIENT LIST), and in what ioredis keeps to re-subscribe.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { loadConfig } from '../../lib/config.js'
import type { Logger } from '../../lib/logger.js'
import { openRedisConnections, type RedisConnections } from '../../lib/redis/connection.js'
import { RedisKeys } from '../../lib/redis/keys.js'
import { publish, RedisPubSub } from '../../lib/redis/pubsub.js'
import { clusterSlot } from '../../lib/redis/shard-subscriptions.js'
import { waitFor } from '../helper.js'
import { redisClient, startRedisCluster, uniquePrefix, type RedisClusterHandle } from '../redis-harness.js'

const quiet: Logger = { debug () {}, info () {}, warn () {}, error () {} }

/** What the masters hold under `prefix`: shard channel → subscriber count, and the shard subscriptions per Pub/Sub connection. */
async function mastersView (masters: Redis[], prefix: string): Promise<{ numsub: Map<string, number>, perConnection: number[] }> {
  const numsub = new Map<string, number>()
  const perConnection: number[] = []
  for (const master of masters) {
    for (const channel of await master.pubsub('SHARDCHANNELS', `${prefix}*`) as string[]) {
      const [, count] = await master.pubsub('SHARDNUMSUB', channel) as [string, number]
      numsub.set(channel, (numsub.get(channel) ?? 0) + Number(count))
    }
    for (const line of (await master.client('LIST') as string).split('\n')) {
      if (line.includes('name=ioredis-cluster(ssubscriber):wsc-pubsub ')) perConnection.push(Number(/ ssub=(\d+)/.exec(line)?.[1] ?? 0))
    }
  }
  return { numsub, perConnection }
}

/** Closes every connection of the Pub/Sub client on every master: its shard subscribers and its own. */
async function killPubSubConnections (masters: Redis[]): Promise<number> {
  let killed = 0
  for (const master of masters) {
    for (const line of (await master.client('LIST') as string).split('\n')) {
      const id = / name=(?:ioredis-cluster\(ssubscriber\):)?wsc-pubsub /.test(line) ? /^id=(\d+)/.exec(line)?.[1] : undefined
      if (id === undefined) continue
      await master.call('CLIENT', 'KILL', 'ID', id)
      killed++
    }
  }
  return killed
}

interface Subject {
  pubsub: RedisPubSub
  connections: RedisConnections
  keys: RedisKeys
  resubscribed: () => number
}

async function startPubSub (t: TestContext, cluster: RedisClusterHandle, prefix: string): Promise<Subject> {
  const keys = new RedisKeys(prefix)
  const connections = openRedisConnections(loadConfig({ env: {}, options: { redis: { clusterNodes: cluster.seeds, poolSize: 1 } } }).redis)
  t.after(() => connections.close())
  let resubscribed = 0
  const pubsub = new RedisPubSub({
    mode: 'cluster',
    subscriber: connections.subscriber,
    keys,
    publish: (channel, message) => connections.commands.forNode((client) => publish('cluster', client, channel, message)),
    publisherUp: () => connections.commands.nodeClient.status === 'ready',
    probeInterval: 300,
    connectTimeout: 10_000,
    log: quiet,
    afterResubscribe: () => { resubscribed++ }
  })
  await connections.commands.ready(10_000)
  await pubsub.start('n1', () => {})
  t.after(() => pubsub.close())
  return { pubsub, connections, keys, resubscribed: () => resubscribed }
}

test('clusterSlot agrees with CLUSTER KEYSLOT, hash tags included', async (t) => {
  const cluster = await startRedisCluster(t)
  const master = redisClient(t, cluster.masters[0]?.addr as string)
  for (const name of ['wsc:node:wsc-0', 'wsc:broadcast', 'wsc:room:lobby', 'wsc:presence:{alice}', 'a{}b', '{}', 'x{y}z{w}', 'wsc:room:ünïcødé', '']) {
    assert.equal(clusterSlot(name), Number(await master.cluster('KEYSLOT', name)), name)
  }
})

test('Cluster Pub/Sub: after a cluster restart and 10 forced reconnects the subscriptions equal the interest, and a room left while down stays gone', async (t) => {
  const cluster = await startRedisCluster(t)
  const masters = cluster.masters.map((master) => redisClient(t, master.addr))
  const prefix = uniquePrefix()
  const { pubsub, connections, keys, resubscribed } = await startPubSub(t, cluster, prefix)
  const rooms = Array.from({ length: 9 }, (_, i) => keys.roomChannel(`room-${i}`))
  await pubsub.subscribe(rooms)
  const wanted = new Set([keys.nodeChannel('n1'), keys.broadcastChannel, ...rooms])
  // The rooms land on every master, so every shard subscriber is exercised.
  assert.equal(new Set(rooms.map((room) => cluster.initialMasterOf(room))).size, 3)

  const settled = async (what: string): Promise<number> => {
    const from = performance.now()
    let seen = new Map<string, number>()
    await waitFor(async () => {
      seen = (await mastersView(masters, prefix)).numsub
      return [...wanted].every((channel) => seen.get(channel) === 1) && [...seen.keys()].every((channel) => wanted.has(channel))
    }, 15_000, `${what}: the masters to hold exactly the wanted channels`).catch((err: Error) => {
      const unwanted = [...seen.keys()].filter((channel) => !wanted.has(channel))
      const missing = [...wanted].filter((channel) => seen.get(channel) !== 1)
      throw new Error(`${err.message}; subscribed but not wanted: ${unwanted.join(', ') || 'none'}; wanted but not subscribed once: ${missing.map((channel) => `${channel} (${seen.get(channel) ?? 0})`).join(', ') || 'none'}`)
    })
    await waitFor(() => pubsub.probeOnce(), 10_000, `${what}: a probe round to pass on every shard`)
    return performance.now() - from
  }
  const assertEqualsInterest = async (what: string): Promise<void> => {
    const { numsub, perConnection } = await mastersView(masters, prefix)
    assert.deepEqual([...numsub.keys()].sort(), [...wanted].sort(), `${what}: the shard channels are the wanted ones`)
    assert.ok([...numsub.values()].every((count) => count === 1), `${what}: each channel has one subscriber`)
    assert.equal(perConnection.reduce((sum, n) => sum + n, 0), wanted.size, `${what}: the Pub/Sub connections hold ${perConnection.join(' + ')} subscriptions for ${wanted.size} channels`)
    const counts = await waitFor(() => {
      const now = pubsub.subscriptions()
      return now.listed === wanted.size && now.confirmed === wanted.size ? now : undefined
    }, 5000, `${what}: ioredis's re-subscribe list to hold each wanted channel once`).catch(() => pubsub.subscriptions())
    assert.deepEqual(counts, { wanted: wanted.size, listed: wanted.size, confirmed: wanted.size }, `${what}: ioredis lists and confirms each wanted channel once`)
  }
  await settled('at start')
  await assertEqualsInterest('at start')

  // The whole cluster goes away: the Pub/Sub client is down when the last member of room-0 leaves.
  const everyNode = [...cluster.processes.values()]
  await Promise.all(everyNode.map((node) => node.kill('SIGTERM')))
  await waitFor(() => connections.subscriber.status !== 'ready', 10_000, 'the Pub/Sub client to notice the outage')
  await pubsub.unsubscribe([rooms[0] as string])
  wanted.delete(rooms[0] as string)
  const before = resubscribed()
  await Promise.all(everyNode.map((node) => node.start()))
  await settled('after the cluster restarted')
  await assertEqualsInterest('after the cluster restarted')
  await waitFor(() => resubscribed() > before, 5000, 'afterResubscribe after the restart')

  const resubscribedIn: number[] = []
  for (let i = 1; i <= 10; i++) {
    const gaps = resubscribed()
    assert.ok(await killPubSubConnections(masters) >= 3, 'the Pub/Sub connections were found and closed')
    // A room left and another joined while the shard subscribers are being replaced.
    if (i === 5) {
      await pubsub.unsubscribe([rooms[1] as string])
      wanted.delete(rooms[1] as string)
      await pubsub.subscribe([keys.roomChannel('late')])
      wanted.add(keys.roomChannel('late'))
    }
    resubscribedIn.push(await settled(`after forced reconnect ${i}`))
    await waitFor(() => resubscribed() > gaps, 5000, `afterResubscribe after forced reconnect ${i}`)
  }
  t.diagnostic(`forced reconnects: subscriptions back and a probe round passed ${Math.round(Math.min(...resubscribedIn))}–${Math.round(Math.max(...resubscribedIn))} ms after CLIENT KILL; afterResubscribe called ${resubscribed()} times`)
  await assertEqualsInterest('after 10 forced reconnects')
})
