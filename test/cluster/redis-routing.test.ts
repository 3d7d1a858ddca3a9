import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startNodes, uniquePrefix, redisClient, type TestNode } from '../redis-harness.js'
import { broadcastEverywhere, connect, interestOnly, kickAndDisconnect, presenceAndNodesAgree, roomAcrossNodes, userToUser } from './redis-scenarios.js'

const three = (t: import('node:test').TestContext): Promise<TestNode[]> => startNodes(t, 3, { prefix: uniquePrefix() })

test('standalone Redis: a user reaches every device of another user on other nodes', async (t) => {
  await userToUser(t, await three(t))
})

test('standalone Redis: a room spans three nodes; server-side joinRoom/leaveRoom reach every device', async (t) => {
  await roomAcrossNodes(t, await three(t))
})

test('standalone Redis: broadcast reaches every connection on every node', async (t) => {
  await broadcastEverywhere(t, await three(t))
})

test('standalone Redis: kick and disconnect close connections on other nodes', async (t) => {
  await kickAndDisconnect(t, await three(t))
})

test('standalone Redis: presence, isOnline, onlineCount and nodes() agree on every node', async (t) => {
  await presenceAndNodesAgree(t, await three(t))
})

test('standalone Redis: a node hosting none of a room or user receives none of its traffic', async (t) => {
  await interestOnly(t, await three(t))
})

test('standalone Redis: an operator sees the registry, the index and the channels', async (t) => {
  const prefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { prefix })
  assert.ok(a && b)
  const member = await connect(t, a, 'olga')
  member.send({ type: 'join', room: 'ops' })
  await member.next('joined')
  const redis = redisClient(t)
  const entry = JSON.parse(await redis.get(`${prefix}nodes:${a.nodeId}`) ?? 'null') as Record<string, unknown>
  assert.deepEqual(Object.keys(entry).sort(), ['connections', 'heartbeatAt', 'id', 'instance', 'ip', 'port', 'startedAt', 'version'])
  assert.equal(entry.id, a.nodeId)
  const ttl = await redis.pttl(`${prefix}nodes:${a.nodeId}`)
  assert.ok(ttl > 0 && ttl <= 1500, `TTL is 3 heartbeats (1500 ms), got ${ttl}`)
  const index = await redis.zrange(`${prefix}node-index`, '0', '-1', 'WITHSCORES')
  assert.deepEqual([index[0], index[2]].sort(), [a.nodeId, b.nodeId].sort())
  assert.deepEqual(await redis.hgetall(`${prefix}presence:{olga}`), { [member.connectionId]: a.nodeId })
  assert.deepEqual(await redis.smembers(`${prefix}node-users:${a.nodeId}`), ['olga'])
  const channels = (await redis.pubsub('CHANNELS', `${prefix}*`) as string[]).sort()
  assert.deepEqual(channels, [
    `${prefix}broadcast`,
    `${prefix}node:${a.nodeId}`,
    `${prefix}node:${b.nodeId}`,
    `${prefix}node-batch:${a.nodeId}`,
    `${prefix}node-batch:${b.nodeId}`,
    `${prefix}room:ops`
  ].sort())
  const status = a.app.wsc.routerStatus()
  assert.equal(status.up, true, status.detail)
  assert.equal(typeof status.probeLatencyMs, 'number')
})

test('standalone Redis: a join whose authorizeJoin outlives the connection leaves no room subscription behind', async (t) => {
  let allow: (() => void) | undefined
  let asked: (() => void) | undefined
  const hookCalled = new Promise<void>((resolve) => { asked = resolve })
  const prefix = uniquePrefix()
  const [node] = await startNodes(t, 1, {
    prefix,
    extra: {
      authorizeJoin: async () => {
        asked?.()
        await new Promise<void>((resolve) => { allow = resolve })
        return true
      }
    }
  })
  assert.ok(node)
  const client = await connect(t, node, 'ada')
  const released = new Promise((resolve) => node.app.wsc.once('disconnect', resolve))
  client.send({ type: 'join', room: 'late' })
  await hookCalled
  await client.close()
  await released
  allow?.()
  // The join's continuation runs (and would issue its SUBSCRIBE) before the next turn of the event loop.
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(node.app.wsc.health().rooms, 0)
  const [, subscribers] = await redisClient(t).pubsub('NUMSUB', `${prefix}room:late`) as [string, number]
  assert.equal(Number(subscribers), 0, 'no node subscribes to a room without members')
})

test('standalone Redis: a second process under a live node id refuses to start and leaves the first one alone', async (t) => {
  const prefix = uniquePrefix()
  const [first] = await startNodes(t, 1, { prefix, heartbeatMs: 300 })
  assert.ok(first)
  const client = await connect(t, first, 'ada')
  await assert.rejects(startNodes(t, 1, { prefix, heartbeatMs: 300 }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'WSC_ERR_NODE_ID_IN_USE')
    assert.match(err.message, new RegExp(`node id ${first.nodeId} is in use by another live process .*POD_NAME, which wins over HOSTNAME; server\\.node_id`))
    return true
  })
  assert.deepEqual((await first.app.wsc.presence('ada')).map((entry) => entry.connectionId), [client.connectionId], 'the first node\'s presence is intact')
  await first.app.wsc.sendToUser('ada', 'still here')
  assert.equal((await client.next('message')).data, 'still here')
})
