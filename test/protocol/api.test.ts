import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import wsc from '../../plugins/index.js'
import { buildInProcess, directMessages, TestClient, within } from '../helper.js'

test('a user offline during 100 sends receives all 100 in order on connect', async (t) => {
  const { app, connect } = await buildInProcess(t)
  const results = []
  for (let i = 1; i <= 100; i++) results.push(await app.wsc.sendToUser('olga', { n: i }))
  assert.deepEqual(results.map((r) => r.seq), Array.from({ length: 100 }, (_, i) => i + 1))
  const client = await connect('token=olga')
  const messages = await client.take('message', 100)
  assert.deepEqual(messages.map((m) => (m.data as { n: number }).n), Array.from({ length: 100 }, (_, i) => i + 1))
  assert.deepEqual(messages.map((m) => m.id), results.map((r) => r.id))
})

test('reconnecting with since=N receives exactly the messages after N, then live traffic', async (t) => {
  const { app, connect } = await buildInProcess(t)
  for (let i = 1; i <= 20; i++) await app.wsc.sendToUser('pat', i)
  const client = await connect('token=pat&since=15')
  assert.deepEqual((await client.take('message', 5)).map((m) => m.seq), [16, 17, 18, 19, 20])
  await app.wsc.sendToUser('pat', 21)
  assert.equal((await client.next('message')).seq, 21)
  client.send({ type: 'ping' })
  await client.next('pong')
  assert.equal(client.frames.length, 0, 'nothing before 16, nothing twice')
  const upToDate = await connect('token=pat&since=21')
  upToDate.send({ type: 'ping' })
  await upToDate.next('pong')
  assert.equal(upToDate.frames.length, 0)
})

test('messages sent while a replay runs arrive once, after it, in seq order', async (t) => {
  const { app, open } = await buildInProcess(t)
  for (let i = 1; i <= 500; i++) await app.wsc.sendToUser('quinn', i)
  const client = open('token=quinn&since=0')
  const live = (async () => { for (let i = 501; i <= 600; i++) await app.wsc.sendToUser('quinn', i) })()
  await client.next('welcome')
  await live
  const seqs = (await client.take('message', 600, 20_000)).map((m) => Number(m.seq))
  assert.equal(new Set(seqs).size, 600, 'no duplicates')
  assert.deepEqual([...seqs].sort((a, b) => a - b), Array.from({ length: 600 }, (_, i) => i + 1))
})

test('two devices of one user both receive a sendToUser', async (t) => {
  const { app, connect } = await buildInProcess(t)
  const phone = await connect('token=ravi')
  const laptop = await connect('token=ravi')
  const { seq } = await app.wsc.sendToUser('ravi', { text: 'hello' })
  for (const device of [phone, laptop]) {
    const message = await device.next('message')
    assert.equal(message.seq, seq)
    assert.equal(message.from, null)
    assert.deepEqual(message.data, { text: 'hello' })
  }
})

test('broadcast, sendToConnection, server-side joinRoom and leaveRoom', async (t) => {
  const { app, connect } = await buildInProcess(t)
  const sam = await connect('token=sam')
  const tia = await connect('token=tia')
  await app.wsc.broadcast('to all')
  for (const client of [sam, tia]) assert.deepEqual((await client.next('message')).to, { broadcast: true })
  const [entry] = await app.wsc.presence('tia')
  assert.ok(entry)
  await app.wsc.sendToConnection(entry.connectionId, 'just you')
  const direct = await tia.next('message')
  assert.deepEqual(direct.to, { connection: entry.connectionId })
  await app.wsc.joinRoom('sam', 'ops')
  assert.deepEqual(await sam.next('joined'), { type: 'joined', room: 'ops' })
  await app.wsc.sendToRoom('ops', 'incident', { from: 'pager' })
  const roomMessage = await sam.next('message')
  assert.equal(roomMessage.from, 'pager')
  await app.wsc.leaveRoom('sam', 'ops')
  assert.deepEqual(await sam.next('left'), { type: 'left', room: 'ops' })
  sam.send({ type: 'ping' })
  await sam.next('pong')
  assert.equal(tia.frames.length + sam.frames.length, 0, 'nothing else arrived')
})

test('kick closes every connection of the user with 1008; disconnect closes one with 1000', async (t) => {
  const { app, connect } = await buildInProcess(t)
  const a1 = await connect('token=uma')
  const a2 = await connect('token=uma')
  const b = await connect('token=vic')
  await app.wsc.kick('uma', 'token revoked')
  for (const client of [a1, a2]) {
    const closed = await within(client.closed, 5000, 'kick')
    assert.equal(closed.code, 1008)
    assert.equal(closed.reason, 'token revoked')
  }
  const [entry] = await app.wsc.presence('vic')
  assert.ok(entry)
  await app.wsc.disconnect(entry.connectionId)
  assert.equal((await within(b.closed, 5000, 'disconnect')).code, 1000)
})

test('presence, isOnline, onlineCount, nodes and connection events', async (t) => {
  const { app, connect } = await buildInProcess(t, { authorizePublish: directMessages })
  const events: string[] = []
  app.wsc.on('connect', ({ userId }) => events.push(`connect:${userId}`))
  app.wsc.on('disconnect', ({ userId, code }) => events.push(`disconnect:${userId}:${code}`))
  app.wsc.on('message', ({ userId, to, data }) => events.push(`message:${userId}:${JSON.stringify(to)}:${JSON.stringify(data)}`))
  assert.equal(await app.wsc.isOnline('wes'), false)
  const wes = await connect('token=wes')
  assert.equal(await app.wsc.isOnline('wes'), true)
  // The connection id the client was welcomed with, and the node it is on.
  assert.deepEqual(await app.wsc.presence('wes'), [{ connectionId: wes.welcome?.connectionId, nodeId: 'test-node' }])
  assert.equal(await app.wsc.onlineCount(), 1)
  const [node] = await app.wsc.nodes()
  assert.equal(node?.id, 'test-node')
  assert.equal(node?.connections, 1)
  wes.send({ type: 'publish', id: 'p', to: { user: 'xia' }, data: 1 })
  await wes.next('ack')
  await wes.close()
  await within((async () => { while (await app.wsc.isOnline('wes')) await new Promise((resolve) => app.wsc.once('disconnect', resolve)) })(), 5000, 'offline')
  assert.deepEqual(events, ['connect:wes', 'message:wes:{"user":"xia"}:1', 'disconnect:wes:1005'])
  assert.equal(await app.wsc.onlineCount(), 0)
})

test('sends refuse bad input with coded errors instead of dropping it', async (t) => {
  const { app } = await buildInProcess(t)
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  await assert.rejects(app.wsc.sendToUser('', 1), { code: 'WSC_ERR_TARGET' })
  await assert.rejects(app.wsc.sendToRoom('r'.repeat(300), 1), { code: 'WSC_ERR_TARGET' })
  await assert.rejects(app.wsc.sendToUser('u', cyclic), { code: 'WSC_ERR_PAYLOAD' })
  await assert.rejects(app.wsc.sendToUser('u', undefined), { code: 'WSC_ERR_PAYLOAD' })
  await assert.rejects(app.wsc.broadcast('x'.repeat(70_000)), { code: 'WSC_ERR_PAYLOAD' })
  await assert.rejects(app.wsc.kick(''), { code: 'WSC_ERR_TARGET' })
})

test('sends before ready and after close reject with WSC_ERR_CLOSED', async () => {
  const app = Fastify()
  await app.register(wsc, { server: { nodeId: 'n' } })
  await assert.rejects(app.wsc.sendToUser('u', 1), { code: 'WSC_ERR_CLOSED' })
  await app.ready()
  assert.equal((await app.wsc.sendToUser('u', 1)).seq, 1)
  await app.close()
  await assert.rejects(app.wsc.sendToUser('u', 1), { code: 'WSC_ERR_CLOSED' })
})

test('a bad configuration value stops registration with an error naming the key', async () => {
  const app = Fastify()
  await assert.rejects(async () => { await app.register(wsc, { websocket: { heartbeatInterval: 'often' } }).ready() }, (err: Error & { code?: string }) => {
    assert.equal(err.code, 'WSC_ERR_CONFIG')
    assert.match(err.message, /websocket\.heartbeat_interval = "often"/)
    return true
  })
})

test('the ip-port node id uses the listen port when nothing else names the node', async (t) => {
  const saved = { POD_NAME: process.env.POD_NAME, HOSTNAME: process.env.HOSTNAME, NODE_ID: process.env.NODE_ID, WSC_NODE_PORT: process.env.WSC_NODE_PORT }
  for (const key of Object.keys(saved)) Reflect.deleteProperty(process.env, key)
  t.after(() => { for (const [key, value] of Object.entries(saved)) if (value !== undefined) process.env[key] = value })
  const app = Fastify()
  await app.register(wsc, { server: { nodeIp: '127.0.0.1' } })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const client = await TestClient.connect(`ws://127.0.0.1:${port}/ws`)
  assert.equal(app.wsc.nodeId, `127.0.0.1-${port}`)
  assert.equal((await app.wsc.nodes())[0]?.id, `127.0.0.1-${port}`)
  await client.close()
})

test('a send retried with its id stores nothing new and resolves with the first one\'s seq', async (t) => {
  const { app, connect } = await buildInProcess(t)
  const first = await app.wsc.sendToUser('ida', { order: 1 }, { id: 'order-1:paid' })
  assert.deepEqual(first, { id: 'order-1:paid', seq: 1 })
  assert.deepEqual(await app.wsc.sendToUser('ida', { order: 1 }, { id: 'order-1:paid' }), first)
  assert.deepEqual(await app.wsc.sendToUser('ida', { order: 2 }, { id: 'order-2:paid' }), { id: 'order-2:paid', seq: 2 })
  // Ids are the user's: another user may get a message with the same id.
  assert.deepEqual(await app.wsc.sendToUser('jon', { order: 1 }, { id: 'order-1:paid' }), { id: 'order-1:paid', seq: 1 })
  const ida = await connect('token=ida&since=0')
  assert.deepEqual((await ida.take('message', 2)).map((m) => [m.id, m.seq]), [['order-1:paid', 1], ['order-2:paid', 2]])
  await app.wsc.sendToUser('ida', { order: 1 }, { id: 'order-1:paid' })
  ida.send({ type: 'ping' })
  await ida.next('pong')
  assert.equal(ida.frames.filter((frame) => frame.type === 'message').length, 0, 'a retry is not delivered twice to a connection that has it')
  for (const id of ['', 'x'.repeat(129), 'has space', 'é']) {
    await assert.rejects(app.wsc.sendToUser('ida', 1, { id }), { code: 'WSC_ERR_TARGET' }, JSON.stringify(id))
  }
  await ida.close()
})
