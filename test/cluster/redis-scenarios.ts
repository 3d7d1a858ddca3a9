/**
 * The multi-node scenarios every Redis mode must pass, run by redis-routing.test.ts (standalone) and
 * redis-cluster.test.ts (Redis Cluster, sharded Pub/Sub). Each takes three started nodes.
 */
import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import { type Frame, TestClient, waitFor } from '../helper.js'
import { type TestNode } from '../redis-harness.js'

export async function connect (t: TestContext, node: TestNode, userId: string): Promise<TestClient & { connectionId: string }> {
  const client = new TestClient(node.url(`token=${encodeURIComponent(userId)}`))
  let welcome: Frame
  try {
    welcome = await client.next('welcome')
  } catch (err) {
    // A missing welcome says little alone: whether the upgrade completed and what the node's Redis
    // connections were doing say where it stalled.
    const { detail, up } = node.router.status()
    throw new Error(`${(err as Error).message}: ${userId} on ${node.nodeId}, socket readyState ${client.socket.readyState}, router ${up ? 'up' : 'down'} (${detail})`)
  }
  assert.equal(welcome.nodeId, node.nodeId)
  t.after(() => client.close())
  return Object.assign(client, { connectionId: String(welcome.connectionId) })
}

const dataOf = (frame: Frame): unknown => frame.data

export async function userToUser (t: TestContext, [a, b, c]: TestNode[]): Promise<void> {
  assert.ok(a && b && c)
  const alice = await connect(t, a, 'alice')
  const bobOnB = await connect(t, b, 'bob')
  const bobOnC = await connect(t, c, 'bob')
  alice.send({ type: 'publish', id: 'p1', to: { user: 'bob' }, data: { text: 'hi bob' } })
  assert.deepEqual(await alice.next('ack'), { type: 'ack', id: 'p1' })
  for (const bob of [bobOnB, bobOnC]) {
    const message = await bob.next('message')
    assert.equal(message.from, 'alice')
    assert.deepEqual(message.to, { user: 'bob' })
    assert.deepEqual(message.data, { text: 'hi bob' })
  }
  const sent = await c.app.wsc.sendToUser('alice', { text: 'from the server on C' })
  const received = await alice.next('message')
  assert.equal(received.id, sent.id)
  assert.equal(received.from, null)
  assert.deepEqual(received.data, { text: 'from the server on C' })
}

export async function roomAcrossNodes (t: TestContext, [a, b, c]: TestNode[]): Promise<void> {
  assert.ok(a && b && c)
  const members = [await connect(t, a, 'ra'), await connect(t, b, 'rb'), await connect(t, c, 'rc')]
  for (const member of members) {
    member.send({ type: 'join', room: 'lobby' })
    assert.deepEqual(await member.next('joined'), { type: 'joined', room: 'lobby' })
  }
  members[0]?.send({ type: 'publish', to: { room: 'lobby' }, data: 'hello lobby' })
  for (const member of members) {
    const message = await member.next('message')
    assert.equal(message.from, 'ra')
    assert.deepEqual(message.to, { room: 'lobby' })
    assert.equal(message.data, 'hello lobby')
  }
  await b.app.wsc.sendToRoom('lobby', 'from B')
  for (const member of members) assert.equal(dataOf(await member.next('message')), 'from B')

  // Server-side joinRoom/leaveRoom reach every connection of the user, wherever it is.
  const vipOnA = await connect(t, a, 'vip-user')
  const vipOnC = await connect(t, c, 'vip-user')
  await b.app.wsc.joinRoom('vip-user', 'vip')
  for (const device of [vipOnA, vipOnC]) assert.deepEqual(await device.next('joined'), { type: 'joined', room: 'vip' })
  await b.app.wsc.sendToRoom('vip', 'vip only')
  for (const device of [vipOnA, vipOnC]) assert.equal(dataOf(await device.next('message')), 'vip only')
  await a.app.wsc.leaveRoom('vip-user', 'vip')
  for (const device of [vipOnA, vipOnC]) assert.deepEqual(await device.next('left'), { type: 'left', room: 'vip' })
  await b.app.wsc.sendToRoom('vip', 'after leaving')
  await b.app.wsc.sendToUser('vip-user', 'marker')
  // The next message is the marker: the room message after leaving reached neither device.
  for (const device of [vipOnA, vipOnC]) assert.equal(dataOf(await device.next('message')), 'marker')
}

export async function broadcastEverywhere (t: TestContext, [a, b, c]: TestNode[]): Promise<void> {
  assert.ok(a && b && c)
  const clients = [await connect(t, a, 'x1'), await connect(t, b, 'x2'), await connect(t, c, 'x3'), await connect(t, c, 'x4')]
  const sent = await b.app.wsc.broadcast({ notice: 'maintenance at noon' })
  for (const client of clients) {
    const message = await client.next('message')
    assert.equal(message.id, sent.id)
    assert.deepEqual(message.to, { broadcast: true })
    assert.deepEqual(message.data, { notice: 'maintenance at noon' })
  }
}

export async function kickAndDisconnect (t: TestContext, [a, b, c]: TestNode[]): Promise<void> {
  assert.ok(a && b && c)
  const kickedOnB = await connect(t, b, 'troll')
  const kickedOnC = await connect(t, c, 'troll')
  const bystander = await connect(t, c, 'bystander')
  await a.app.wsc.kick('troll', 'spam')
  for (const client of [kickedOnB, kickedOnC]) assert.deepEqual(await client.closed, { code: 1008, reason: 'spam' })

  const dOnB = await connect(t, b, 'dora')
  const dOnC = await connect(t, c, 'dora')
  await a.app.wsc.disconnect(dOnC.connectionId, 'bye')
  assert.deepEqual(await dOnC.closed, { code: 1000, reason: 'bye' })
  // The user's other connection and other users stay connected.
  for (const client of [dOnB, bystander]) {
    client.send({ type: 'ping' })
    await client.next('pong')
  }
  await waitFor(async () => (await a.app.wsc.presence('troll')).length === 0 && (await a.app.wsc.presence('dora')).length === 1, 5000, 'presence to drop the closed connections')
}

export async function presenceAndNodesAgree (t: TestContext, nodes: TestNode[]): Promise<void> {
  const [a, b, c] = nodes
  assert.ok(a && b && c)
  const pOnA = await connect(t, a, 'pat')
  const pOnC = await connect(t, c, 'pat')
  await connect(t, b, 'quinn')
  const expectedPat = [
    { connectionId: pOnA.connectionId, nodeId: a.nodeId },
    { connectionId: pOnC.connectionId, nodeId: c.nodeId }
  ].sort((x, y) => x.connectionId.localeCompare(y.connectionId))
  const views = await waitFor(async () => {
    const seen = await Promise.all(nodes.map(async (node) => ({
      nodes: (await node.app.wsc.nodes()).map((info) => ({ id: info.id, connections: info.connections })),
      pat: await node.app.wsc.presence('pat'),
      quinnOnline: await node.app.wsc.isOnline('quinn'),
      online: await node.app.wsc.onlineCount()
    })))
    return seen.every((view) => view.online === 3 && view.nodes.every((node) => node.connections === 1)) ? seen : undefined
  }, 5000, 'every node to count the 3 connections')
  for (const view of views) {
    assert.deepEqual(view, views[0], 'every node sees the same presence and nodes')
    assert.deepEqual(view.pat, expectedPat)
    assert.equal(view.quinnOnline, true)
    assert.deepEqual(view.nodes, [
      { id: a.nodeId, connections: 1 },
      { id: b.nodeId, connections: 1 },
      { id: c.nodeId, connections: 1 }
    ])
  }
  const info = (await b.app.wsc.nodes()).find((node) => node.id === a.nodeId)
  assert.ok(info !== undefined)
  assert.equal(info.ip, a.app.wscIdentity.current?.ip)
  assert.equal(typeof info.version, 'string')
  assert.ok(info.heartbeatAt >= info.startedAt)

  await pOnC.close()
  await waitFor(async () => {
    const seen = await Promise.all(nodes.map((node) => node.app.wsc.presence('pat')))
    return seen.every((entries) => entries.length === 1 && entries[0]?.nodeId === a.nodeId)
  }, 5000, 'every node to see pat only on A')
  assert.equal(await b.app.wsc.isOnline('nobody'), false)

  // A node that shuts down deregisters at once: no ghost in nodes() or presence.
  await c.app.close()
  const remaining = await a.app.wsc.nodes()
  assert.deepEqual(remaining.map((node) => node.id), [a.nodeId, b.nodeId])
  assert.deepEqual((await b.app.wsc.presence('pat')).map((entry) => entry.nodeId), [a.nodeId])
}

/** Counts Pub/Sub messages each node received while `act` ran (probes excluded). */
async function traffic (nodes: TestNode[], act: () => Promise<void>): Promise<number[]> {
  const before = nodes.map((node) => node.router.status().received)
  await act()
  return nodes.map((node, i) => node.router.status().received - (before[i] ?? 0))
}

export async function interestOnly (t: TestContext, nodes: TestNode[]): Promise<void> {
  const [a, b, c] = nodes
  assert.ok(a && b && c)
  const roomOnA = await connect(t, a, 'm1')
  const roomOnB = await connect(t, b, 'm2')
  for (const member of [roomOnA, roomOnB]) {
    member.send({ type: 'join', room: 'quiet' })
    await member.next('joined')
  }
  const userOnA = await connect(t, a, 'uma')
  const userOnB = await connect(t, b, 'uma')
  const count = 10
  const seen = await traffic(nodes, async () => {
    for (let i = 0; i < count; i++) {
      await a.app.wsc.sendToRoom('quiet', i)
      await c.app.wsc.sendToUser('uma', i)
    }
    await a.app.wsc.kick('nobody-here')
    for (const client of [roomOnA, roomOnB, userOnA, userOnB]) await client.take('message', count)
  })
  assert.equal(seen[2], 0, `node C hosts none of the room's or the user's connections and received ${seen[2]} messages`)
  assert.ok((seen[0] ?? 0) >= 2 * count && (seen[1] ?? 0) >= 2 * count, `A and B received their traffic: ${seen.join(', ')}`)

  // Broadcast is the one channel every node receives.
  const cBefore = c.router.status().received
  const broadcast = await traffic(nodes, async () => {
    await a.app.wsc.broadcast('all')
    for (const client of [roomOnA, roomOnB, userOnA, userOnB]) await client.next('message')
    await waitFor(() => c.router.status().received > cBefore, 5000, 'C to receive the broadcast')
  })
  assert.ok((broadcast[2] ?? 0) >= 1)
}
