import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TestClient, waitFor } from '../helper.js'
import { redisClient, startNodeProcess, startNodes, uniquePrefix, type NodeProcess, type TestNode } from '../redis-harness.js'

const HEARTBEAT_MS = 300

async function connectTo (t: import('node:test').TestContext, url: string): Promise<TestClient> {
  const client = await TestClient.connect(url)
  t.after(() => client.close())
  return client
}

/** Kills the node with SIGKILL and measures, from a survivor, when its registry entry and presence are gone. */
async function killAndMeasure (t: import('node:test').TestContext, victim: NodeProcess, survivors: TestNode[], prefix: string, users: string[]): Promise<{ keyMs: number, presenceMs: number, nodesMs: number }> {
  const redis = redisClient(t)
  const [a, b] = survivors
  assert.ok(a && b)
  await waitFor(async () => {
    const ids = (await a.app.wsc.nodes()).map((node) => node.id)
    const hosted = await Promise.all(users.map(async (user) => (await b.app.wsc.presence(user)).some((entry) => entry.nodeId === victim.nodeId)))
    return ids.includes(victim.nodeId) && hosted.every(Boolean)
  }, 10_000, 'the survivors to see the victim and its users')
  const killedAt = Date.now()
  await victim.kill('SIGKILL')
  let keyMs = -1
  let presenceMs = -1
  let nodesMs = -1
  await waitFor(async () => {
    const elapsed = Date.now() - killedAt
    if (keyMs < 0 && await redis.exists(`${prefix}nodes:${victim.nodeId}`) === 0) keyMs = elapsed
    if (presenceMs < 0) {
      const views = await Promise.all(users.map((user) => a.app.wsc.presence(user)))
      const userSet = await redis.exists(`${prefix}node-users:${victim.nodeId}`)
      if (userSet === 0 && views.every((entries) => entries.every((entry) => entry.nodeId !== victim.nodeId))) presenceMs = elapsed
    }
    if (nodesMs < 0) {
      const [fromA, fromB] = await Promise.all([a.app.wsc.nodes(), b.app.wsc.nodes()])
      const indexed = await redis.zscore(`${prefix}node-index`, victim.nodeId)
      if (indexed === null && ![...fromA, ...fromB].some((node) => node.id === victim.nodeId)) nodesMs = elapsed
    }
    return keyMs >= 0 && presenceMs >= 0 && nodesMs >= 0
  }, 30 * HEARTBEAT_MS, 'the survivors to reap the killed node', 10)
  return { keyMs, presenceMs, nodesMs }
}

test('a node killed with SIGKILL is reaped by the survivors: registry entry, index and presence', async (t) => {
  const prefix = uniquePrefix()
  const survivors = await startNodes(t, 2, { prefix, heartbeatMs: HEARTBEAT_MS })
  const [a] = survivors
  assert.ok(a)
  const figures: Array<{ keyMs: number, presenceMs: number, nodesMs: number }> = []

  // A Deployment pod: killed, then replaced by a pod with a fresh id.
  for (const round of [1, 2]) {
    const victim = await startNodeProcess(t, { nodeId: `${prefix}victim-${round}`, prefix, heartbeatMs: HEARTBEAT_MS })
    await connectTo(t, victim.url('token=vic'))
    await connectTo(t, victim.url('token=vic'))
    await connectTo(t, victim.url('token=shared'))
    const sharedOnA = await connectTo(t, a.url('token=shared'))
    const figure = await killAndMeasure(t, victim, survivors, prefix, ['vic', 'shared'])
    figures.push(figure)
    t.diagnostic(`SIGKILL round ${round}: registry key gone after ${figure.keyMs} ms, presence after ${figure.presenceMs} ms, nodes()/index after ${figure.nodesMs} ms (heartbeat ${HEARTBEAT_MS} ms = ${(figure.presenceMs / HEARTBEAT_MS).toFixed(2)} heartbeats)`)
    assert.deepEqual(await a.app.wsc.presence('vic'), [])
    assert.deepEqual((await a.app.wsc.presence('shared')).map((entry) => entry.nodeId), [a.nodeId], 'the survivor-hosted entry stays')
    // The surviving device still gets messages.
    await survivors[1]?.app.wsc.sendToUser('shared', 'still here')
    assert.equal((await sharedOnA.next('message')).data, 'still here')
    await sharedOnA.close()
  }
  const ids = (await a.app.wsc.nodes()).map((node) => node.id)
  assert.deepEqual(ids, survivors.map((node) => node.nodeId), 'no ghost of either killed node')
  const worst = Math.max(...figures.map((figure) => figure.presenceMs))
  t.diagnostic(`presence convergence after SIGKILL: worst ${worst} ms = ${(worst / HEARTBEAT_MS).toFixed(2)} heartbeats`)
})

test('a StatefulSet pod restarting under the same id after SIGKILL drops its ghosts at start', async (t) => {
  const prefix = uniquePrefix()
  const [a] = await startNodes(t, 1, { prefix, heartbeatMs: HEARTBEAT_MS })
  assert.ok(a)
  const nodeId = `${prefix}wsc-0`
  const first = await startNodeProcess(t, { nodeId, prefix, heartbeatMs: HEARTBEAT_MS })
  await connectTo(t, first.url('token=ghost'))
  await waitFor(async () => (await a.app.wsc.presence('ghost')).length === 1, 5000, 'ghost to be online')
  await first.kill('SIGKILL')
  // Restarted at once, before its old registry entry expired: nothing of the old process may remain.
  const second = await startNodeProcess(t, { nodeId, prefix, heartbeatMs: HEARTBEAT_MS })
  assert.deepEqual(await a.app.wsc.presence('ghost'), [])
  const fresh = await connectTo(t, second.url('token=ghost'))
  await a.app.wsc.sendToUser('ghost', 'to the new process')
  assert.equal((await fresh.next('message')).data, 'to the new process')
  assert.deepEqual((await a.app.wsc.nodes()).map((node) => node.id).sort(), [a.nodeId, nodeId].sort())
})
