/**
 * `sendToUser` on standalone Redis: one script per pool connection and turn numbers, stores and routes
 * the turn's messages; each destination node gets one Pub/Sub message for them; a node of an older
 * version (no batch channel) gets them one by one; one message's failure fails that send alone.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeMessage } from '../../lib/protocol.js'
import { decodeChannelMessage } from '../../lib/router/routed-event-codec.js'
import { waitFor } from '../helper.js'
import { redisClient, SHARED_REDIS, startNodes, startRedisServer, uniquePrefix } from '../redis-harness.js'
import { connect } from './redis-scenarios.js'

test('one turn of sends to users on two other nodes: one script call per pool connection, one Pub/Sub message per node, every message in order', async (t) => {
  const server = await startRedisServer(t)
  const prefix = uniquePrefix()
  const [a, b, c] = await startNodes(t, 3, { prefix, addr: server.addr, extra: { redis: { addr: server.addr, prefix, poolSize: 1 } } })
  assert.ok(a && b && c)
  const onB = await Promise.all(['b1', 'b2', 'b3'].map((userId) => connect(t, b, userId)))
  const onC = await Promise.all(['c1', 'c2'].map((userId) => connect(t, c, userId)))
  const monitor = await redisClient(t, server.addr).monitor()
  t.after(() => { monitor.disconnect() })
  const seen: string[][] = []
  monitor.on('monitor', (_time: string, args: string[]) => seen.push(args))

  const targets = ['b1', 'b2', 'b3', 'c1', 'c2']
  const sends = Array.from({ length: 20 }, (_, i) => a.app.wsc.sendToUser(targets[i % targets.length] as string, { i }))
  const results = await Promise.all(sends)
  const received = await Promise.all([...onB, ...onC].map((client) => client.take('message', 4)))
  for (const [j, frames] of received.entries()) {
    const expected = results.filter((_, i) => i % targets.length === j)
    assert.deepEqual(frames.map((frame) => frame.seq), expected.map((result) => result.seq), `${targets[j] as string} got its messages in seq order`)
    assert.deepEqual(frames.map((frame) => (frame.data as { i: number }).i), [j, j + 5, j + 10, j + 15])
  }
  await redisClient(t, server.addr).echo('monitor-marker')
  await waitFor(() => seen.some((args) => args[1] === 'monitor-marker'), 5000, 'MONITOR to catch up')
  const scriptCalls = seen.filter((args) => /^eval(sha)?$/i.test(args[0] ?? '') && args.some((arg) => arg.startsWith(`${prefix}inbox:`)))
  assert.equal(scriptCalls.length, 1, 'the 20 sends of one turn are one script call')
  const published = seen.filter((args) => args[0]?.toLowerCase() === 'publish' && args[1]?.startsWith(`${prefix}node-batch:`) === true)
  assert.deepEqual(published.map((args) => args[1]).sort(), [`${prefix}node-batch:${b.nodeId}`, `${prefix}node-batch:${c.nodeId}`])
  assert.equal(seen.filter((args) => args[0]?.toLowerCase() === 'publish' && args[1]?.startsWith(`${prefix}node:`) === true && args[2]?.includes('"kind":"deliver"') === true).length, 0, 'no message went one by one')
})

test('a node that reads no batches (an older version) gets the messages one by one on its node channel, in order', async (t) => {
  const prefix = uniquePrefix()
  const [a] = await startNodes(t, 1, { prefix })
  assert.ok(a)
  const admin = redisClient(t)
  // An older node: its presence entry, and a subscription to its node channel only.
  await admin.hset(`${prefix}presence:{olduser}`, 'old-node~abc-1', 'old-node')
  const subscriber = redisClient(t)
  await subscriber.subscribe(`${prefix}node:old-node`)
  const messages: string[] = []
  subscriber.on('message', (_channel: string, message: string) => messages.push(message))

  const from = [null, 'ann', null]
  const results = await Promise.all([0, 1, 2].map((i) => a.app.wsc.sendToUser('olduser', { i, text: 'quote " and \\ and ü' }, { from: from[i] ?? null })))
  await waitFor(() => messages.length === 3, 5000, 'three messages on the old node channel')
  const decoded = messages.map((message) => decodeChannelMessage(message))
  assert.deepEqual(decoded.map((message) => message !== undefined && 'event' in message && message.event.kind === 'deliver' ? message.event.seq : undefined), results.map((result) => result.seq))
  for (const [i, message] of decoded.entries()) {
    assert.ok(message !== undefined && 'event' in message && message.event.kind === 'deliver')
    assert.equal(message.origin, a.nodeId)
    // The script builds the frame: byte for byte what encodeMessage writes.
    const { ts } = JSON.parse(message.event.frame) as { ts: number }
    assert.equal(message.event.frame, encodeMessage({ id: results[i]?.id as string, seq: results[i]?.seq, from: from[i] ?? null, to: { user: 'olduser' }, dataJson: JSON.stringify({ i, text: 'quote " and \\ and ü' }), ts }))
  }
})

test('one message that Redis refuses (a key of the wrong type) fails that send alone; the others of its turn are stored and delivered', async (t) => {
  const prefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { prefix, extra: { redis: { addr: SHARED_REDIS, prefix, poolSize: 1 } } })
  assert.ok(a && b)
  const good = await connect(t, b, 'good')
  await redisClient(t).hset(`${prefix}seq:{broken}`, 'not', 'a counter')
  const [first, broken, last] = await Promise.allSettled([a.app.wsc.sendToUser('good', 1), a.app.wsc.sendToUser('broken', 2), a.app.wsc.sendToUser('good', 3)])
  assert.equal(first.status, 'fulfilled')
  assert.equal(last.status, 'fulfilled')
  assert.equal(broken.status, 'rejected')
  assert.equal((broken.reason as { code?: string }).code, 'WSC_ERR_UNAVAILABLE')
  assert.match((broken.reason as Error).message, /WRONGTYPE/)
  const frames = await good.take('message', 2)
  assert.deepEqual(frames.map((frame) => frame.data), [1, 3])
})

test('the same id twice in one turn is stored once and delivered once; the retry resolves with the first seq', async (t) => {
  const prefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { prefix })
  assert.ok(a && b)
  const bob = await connect(t, b, 'bob')
  const local = await connect(t, a, 'bob')
  const [first, retry] = await Promise.all([a.app.wsc.sendToUser('bob', 'hi', { id: 'order-1' }), a.app.wsc.sendToUser('bob', 'hi', { id: 'order-1' })])
  assert.equal(retry?.seq, first?.seq)
  const after = await a.app.wsc.sendToUser('bob', 'next')
  for (const client of [bob, local]) {
    const frames = await client.take('message', 2)
    assert.deepEqual(frames.map((frame) => [frame.seq, frame.data]), [[first?.seq, 'hi'], [after.seq, 'next']])
  }
  assert.equal(await redisClient(t).xlen(`${prefix}inbox:{bob}`), 2)
})
