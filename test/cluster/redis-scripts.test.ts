// How fastify-wsc runs its Lua scripts: the source (EVAL) the first time on a socket, the SHA1 (EVALSHA)
// after, the source again when Redis lost its scripts; and through a client's own defineCommand when the
// client comes from another copy of ioredis.
import { createRequire } from 'node:module'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Redis } from 'ioredis'
import { runScript } from '../../lib/redis/scripts.js'
import { waitFor } from '../helper.js'
import { deletePrefix, redisClient, SHARED_REDIS, startNodes, startRedisServer, uniquePrefix } from '../redis-harness.js'
import { connect } from './redis-scenarios.js'

test('scripts: EVAL once per socket, then EVALSHA; after SCRIPT FLUSH the sends in flight are sent again: none lost, none twice, delivered in seq order', async (t) => {
  const server = await startRedisServer(t)
  const prefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { prefix, extra: { redis: { addr: server.addr, prefix, poolSize: 1 }, websocket: { messageBufferSize: 5000 } } })
  assert.ok(a && b)
  const bob = await connect(t, b, 'bob')
  const monitor = await redisClient(t, server.addr).monitor()
  t.after(() => { monitor.disconnect() })
  const scriptCalls: string[] = []
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    const name = args[0]?.toLowerCase()
    if (args[1] === 'monitor-marker') scriptCalls.push('marker')
    else if (source !== 'lua' && (name === 'eval' || name === 'evalsha') && args.some((arg) => arg.includes('{bob}'))) scriptCalls.push(name)
  })
  const first = await Promise.all(Array.from({ length: 50 }, (_, i) => a.app.wsc.sendToUser('bob', i)))
  const admin = redisClient(t, server.addr)
  assert.equal(await admin.script('FLUSH'), 'OK')
  // Four script calls written one after the other (a batch per event-loop turn) before the first reply:
  // those refused with NOSCRIPT are sent again. Every send must resolve with its own seq and arrive once,
  // in seq order; the order of the sends themselves may change (docs/redis.md, "SCRIPT FLUSH").
  const pending: Array<ReturnType<typeof a.app.wsc.sendToUser>> = []
  for (let turn = 0; turn < 4; turn++) {
    for (let i = 0; i < 50; i++) pending.push(a.app.wsc.sendToUser('bob', 50 + turn * 50 + i))
    await new Promise((resolve) => setImmediate(resolve))
  }
  const second = await Promise.all(pending)
  const last = await a.app.wsc.sendToUser('bob', 250)
  const results = [...first, ...second, last]
  const firstSeq = results[0]?.seq as number
  // Before the flush and after the last refusal, seqs follow the sends.
  for (let i = 1; i < 50; i++) assert.equal(results[i]?.seq, firstSeq + i, `send ${i} got seq ${results[i]?.seq}`)
  assert.equal(last.seq, firstSeq + 250)
  assert.deepEqual(results.map((result) => result.seq as number).sort((x, y) => x - y), results.map((_, i) => firstSeq + i), 'one seq per send, none skipped')
  const received = await bob.take('message', results.length, 20_000)
  assert.deepEqual(received.map((frame) => frame.seq), results.map((_, i) => firstSeq + i), 'delivered once each, in seq order')
  const sentAs = new Map(results.map((result, i) => [result.seq, i]))
  assert.deepEqual(received.map((frame) => frame.data), received.map((frame) => sentAs.get(frame.seq as number)), 'each seq carries its own send')
  // MONITOR reports commands in the order Redis ran them: once it shows this one, it showed every earlier one.
  await admin.echo('monitor-marker')
  await waitFor(() => scriptCalls.at(-1) === 'marker', 5000, 'MONITOR to catch up')
  const calls = scriptCalls.slice(0, -1)
  // The first call sends the source; after the flush the SHA1 is refused and the source sent again (how many
  // calls were refused depends on how many were written before the first refusal came back); the last, the SHA1.
  assert.equal(calls[0], 'eval', calls.join(' '))
  assert.equal(calls[1], 'evalsha', calls.join(' '))
  assert.ok(calls.slice(2).includes('eval'), calls.join(' '))
  assert.equal(calls.at(-1), 'evalsha', calls.join(' '))
})

test('scripts: a client from another copy of ioredis runs them through its own defineCommand; this copy\'s clients get no commands defined', async (t) => {
  const prefix = uniquePrefix()
  t.after(() => deletePrefix(SHARED_REDIS, prefix))
  // A second copy of ioredis: the same files loaded again, so its classes are not this copy's.
  const require = createRequire(import.meta.url)
  const entry = require.resolve('ioredis')
  const root = entry.slice(0, entry.lastIndexOf('/built/') + 1)
  const ours = Object.keys(require.cache).filter((key) => key.startsWith(root))
  const saved = new Map(ours.map((key) => [key, require.cache[key]]))
  for (const key of ours) Reflect.deleteProperty(require.cache, key)
  const other = require('ioredis') as { Redis: new (options: object) => Redis }
  for (const key of Object.keys(require.cache).filter((key) => key.startsWith(root))) Reflect.deleteProperty(require.cache, key)
  for (const [key, module] of saved) require.cache[key] = module
  const [host, port] = SHARED_REDIS.split(':')
  const foreign = new other.Redis({ host, port: Number(port) })
  t.after(() => { foreign.disconnect() })
  const own = redisClient(t)
  assert.notEqual(Object.getPrototypeOf(foreign), Object.getPrototypeOf(own))

  const key = `${prefix}presence:{u}`
  await own.hset(key, 'c1', 'n1', 'c2', 'n2', 'c3', 'n1')
  // REAP_PRESENCE removes the entries that point at one node and counts them.
  assert.equal(await runScript(foreign, 'wscReapPresence', [key], ['n1']), 2)
  assert.equal(typeof (foreign as unknown as Record<string, unknown>).wscReapPresence, 'function')
  assert.deepEqual(await own.hgetall(key), { c2: 'n2' })
  assert.equal(await runScript(own, 'wscReapPresence', [key], ['n2']), 1)
  assert.equal((own as unknown as Record<string, unknown>).wscReapPresence, undefined)
  assert.equal(await own.exists(key), 0)
})
