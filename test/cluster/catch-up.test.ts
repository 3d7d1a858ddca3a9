import { test } from 'node:test'
import assert from 'node:assert/strict'
import { waitFor, type TestClient } from '../helper.js'
import { redisClient, startNodes, startRedisServer, uniquePrefix } from '../redis-harness.js'
import { connect } from './redis-scenarios.js'

const USERS = 60

for (const persistence of ['none', 'aof'] as const) {
  test(`Redis restarted (${persistence === 'aof' ? 'with AOF' : 'without persistence'}): every message sent right after reaches the idle connections that stayed open`, async (t) => {
    const server = await startRedisServer(t, persistence === 'aof' ? ['--appendonly', 'yes', '--appendfsync', 'always'] : [])
    const [a, b] = await startNodes(t, 2, { prefix: uniquePrefix(), addr: server.addr, heartbeatMs: 300 })
    assert.ok(a && b)
    const users = Array.from({ length: USERS }, (_, i) => `idle-${i}`)
    const clients = new Map<string, TestClient>()
    for (const user of users) clients.set(user, await connect(t, b, user))
    await waitFor(() => a.app.wsc.routerStatus().up && b.app.wsc.routerStatus().up, 5000, 'both routers up')

    await server.stop()
    await server.start()
    // Right after Redis answers again: each user gets one message through node A. A send that was
    // stored but not pushed live is accepted too (it says so); the id makes a retry store nothing new.
    const seqs = new Map<string, number>()
    for (const user of users) {
      seqs.set(user, await waitFor(async () => {
        try {
          return (await a.app.wsc.sendToUser(user, { after: 'restart' }, { id: `after-${user}` })).seq
        } catch (err) {
          return (err as { code?: string, seq?: number }).code === 'WSC_ERR_STORED_NOT_DELIVERED' ? (err as { seq: number }).seq : undefined
        }
      }, 15_000, `a send to ${user} to be accepted`))
    }

    const missing: string[] = []
    await Promise.all(users.map(async (user) => {
      const client = clients.get(user) as TestClient
      // Only a message that never came counts as missing; a wrong one fails the test as itself.
      const message = await client.next('message', 5000).catch(() => undefined)
      if (message === undefined) {
        missing.push(user)
      } else {
        assert.equal(message.seq, seqs.get(user))
        assert.deepEqual(message.data, { after: 'restart' })
      }
      assert.equal(client.socket.readyState, client.socket.OPEN, `${user}'s connection stayed open`)
    }))
    assert.deepEqual(missing, [], `${missing.length} of ${USERS} open connections never got their message`)
  })
}

test('the first live message of a new user costs no store read: a connection starts at its welcome seq', async (t) => {
  const server = await startRedisServer(t)
  const [a, b] = await startNodes(t, 2, { prefix: uniquePrefix(), addr: server.addr, heartbeatMs: 300 })
  assert.ok(a && b)
  const redis = redisClient(t, server.addr)
  const xranges = async (): Promise<number> => Number(/cmdstat_xrange:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0)
  const before = await xranges()
  const newcomer = await connect(t, b, 'newcomer')
  // The welcome's head (the oldest entry) and the replay after it read the stream: once both have, the connection is live.
  await waitFor(async () => await xranges() - before >= 2, 5000, 'the connection\'s replay to end')
  const sent = await a.app.wsc.sendToUser('newcomer', 'first ever')
  const message = await newcomer.next('message')
  assert.equal(message.seq, sent.seq)
  await b.app.wsc.sendToUser('newcomer', 'second')
  assert.equal((await newcomer.next('message')).seq, (sent.seq as number) + 1)
  assert.equal(await xranges() - before, 2, 'no replay of a gap that is not there')
})
