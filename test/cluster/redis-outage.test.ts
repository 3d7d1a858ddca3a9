import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startNodes, startRedisServer, uniquePrefix } from '../redis-harness.js'
import { connect } from './redis-scenarios.js'
import { waitFor } from '../helper.js'

const UNAVAILABLE = { code: 'WSC_ERR_UNAVAILABLE' }

test('Redis stopped and restarted: sends reject while it is away, local delivery goes on, routing resumes', async (t) => {
  const server = await startRedisServer(t)
  const [a, b] = await startNodes(t, 2, { prefix: uniquePrefix(), addr: server.addr, heartbeatMs: 300 })
  assert.ok(a && b)
  const alice = await connect(t, a, 'alice')
  const bob = await connect(t, b, 'bob')
  for (const client of [alice, bob]) {
    client.send({ type: 'join', room: 'r' })
    await client.next('joined')
  }
  await a.app.wsc.sendToUser('bob', 'before')
  assert.equal((await bob.next('message')).data, 'before')
  await waitFor(() => a.app.wsc.routerStatus().up && b.app.wsc.routerStatus().up, 5000, 'the probe to verify the Pub/Sub loop')

  await server.stop()
  const down = await waitFor(() => {
    const statuses = [a.app.wsc.routerStatus(), b.app.wsc.routerStatus()]
    return statuses.every((status) => !status.up) ? statuses : undefined
  }, 10_000, 'both nodes to report the outage')
  t.diagnostic(`status during the outage: ${down[0]?.detail}`)

  // Cross-node sends reject with the coded error: nothing is dropped silently.
  await assert.rejects(a.app.wsc.sendToUser('bob', 'during'), UNAVAILABLE)
  await assert.rejects(a.app.wsc.kick('bob'), UNAVAILABLE)
  await assert.rejects(a.app.wsc.nodes(), UNAVAILABLE)
  await assert.rejects(a.app.wsc.presence('bob'), UNAVAILABLE)
  // Local connections still get room and broadcast traffic; the send rejects because other nodes were not reached.
  await assert.rejects(a.app.wsc.sendToRoom('r', 'local room'), UNAVAILABLE)
  assert.equal((await alice.next('message')).data, 'local room')
  await assert.rejects(a.app.wsc.broadcast('local broadcast'), UNAVAILABLE)
  assert.equal((await alice.next('message')).data, 'local broadcast')
  // A user message needs its seq from the Redis inbox: it is refused, and not delivered either, so no
  // device shows a message that no replay could ever give again (the next message alice gets is 'room after').
  await assert.rejects(a.app.wsc.sendToUser('alice', 'local user'), UNAVAILABLE)
  // A client's publish gets an UNAVAILABLE error frame and its connection stays open.
  alice.send({ type: 'publish', id: 'p-out', to: { user: 'bob' }, data: 'from alice' })
  const error = await alice.next('error')
  assert.equal(error.code, 'UNAVAILABLE')
  assert.equal(error.id, 'p-out')

  await server.start()
  await waitFor(() => a.app.wsc.routerStatus().up && b.app.wsc.routerStatus().up, 15_000, 'the probe to report Redis back')
  // The restarted Redis is empty: each node re-registered and republished its presence.
  await waitFor(async () => (await a.app.wsc.nodes()).length === 2 && (await a.app.wsc.presence('bob')).length === 1, 5000, 'registry and presence to be republished')
  assert.deepEqual((await a.app.wsc.presence('bob')).map((entry) => entry.nodeId), [b.nodeId])
  assert.deepEqual((await b.app.wsc.presence('alice')).map((entry) => entry.nodeId), [a.nodeId])
  await a.app.wsc.sendToUser('bob', 'after')
  assert.equal((await bob.next('message')).data, 'after')
  // Room channels were re-subscribed: both members get it, each once.
  await b.app.wsc.sendToRoom('r', 'room after')
  for (const client of [alice, bob]) assert.equal((await client.next('message')).data, 'room after')
  await b.app.wsc.sendToUser('alice', 'marker')
  assert.equal((await alice.next('message')).data, 'marker')
  bob.send({ type: 'publish', id: 'p-back', to: { user: 'alice' }, data: 'bob again' })
  await bob.next('ack')
  assert.equal((await alice.next('message')).data, 'bob again')
  const status = a.app.wsc.routerStatus()
  assert.equal(typeof status.probeLatencyMs, 'number')
  assert.ok(status.probeAt !== null && status.probeAt > 0)
})
