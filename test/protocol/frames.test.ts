import { test } from 'node:test'
import assert from 'node:assert/strict'
import { build, buildInProcess, directMessages, TestClient } from '../helper.js'

test('welcome names the node, the connection and the user, with the latest seq', async (t) => {
  const { app, open } = await buildInProcess(t)
  await app.wsc.sendToUser('alice', 'before')
  const client = open('token=alice')
  const welcome = await client.next('welcome')
  assert.equal(welcome.nodeId, 'test-node')
  assert.equal(welcome.userId, 'alice')
  assert.equal(welcome.heartbeatMs, 30000)
  assert.equal(welcome.seq, 1)
  assert.match(String(welcome.connectionId), /^test-node~/)
  assert.equal((await client.next('message')).data, 'before', 'the unacked message follows the welcome')
  await client.close()
})

test('ping gets pong', async (t) => {
  const { connect } = await buildInProcess(t)
  const client = await connect('token=alice')
  client.send({ type: 'ping' })
  await client.next('pong')
  client.send({ type: 'ping', id: 'p-1' })
  await client.next('pong')
  assert.deepEqual(await client.next('ack'), { type: 'ack', id: 'p-1' })
})

test('join, publish to the room, leave: joined/ack/message/left frames', async (t) => {
  const { connect } = await buildInProcess(t)
  const alice = await connect('token=alice')
  const bob = await connect('token=bob')
  alice.send({ type: 'join', room: 'lobby', id: 'c-1' })
  bob.send({ type: 'join', room: 'lobby' })
  assert.deepEqual(await alice.next('joined'), { type: 'joined', room: 'lobby' })
  assert.deepEqual(await alice.next('ack'), { type: 'ack', id: 'c-1' })
  await bob.next('joined')
  alice.send({ type: 'publish', id: 'c-2', to: { room: 'lobby' }, data: { text: 'hello room' } })
  await alice.next('ack')
  for (const client of [alice, bob]) {
    const message = await client.next('message')
    assert.equal(message.from, 'alice')
    assert.deepEqual(message.to, { room: 'lobby' })
    assert.deepEqual(message.data, { text: 'hello room' })
    assert.equal('seq' in message, false)
    assert.equal(typeof message.id, 'string')
    assert.equal(typeof message.ts, 'number')
  }
  bob.send({ type: 'leave', room: 'lobby', id: 'c-3' })
  assert.deepEqual(await bob.next('left'), { type: 'left', room: 'lobby' })
  await bob.next('ack')
  alice.send({ type: 'publish', to: { room: 'lobby' }, data: 'only alice now' })
  assert.equal((await alice.next('message')).data, 'only alice now')
  bob.send({ type: 'ping' })
  await bob.next('pong')
  assert.equal(bob.frames.some((f) => f.type === 'message'), false, 'bob left and got nothing more')
})

test('by default a client may not publish to a user: FORBIDDEN, and nothing is stored for the user', async (t) => {
  const { app, connect } = await buildInProcess(t)
  const alice = await connect('token=alice')
  alice.send({ type: 'publish', id: 'c-1', to: { user: 'bob' }, data: 'hi bob' })
  assert.deepEqual(await alice.next('error'), { type: 'error', id: 'c-1', code: 'FORBIDDEN', message: 'not allowed to publish to user bob' })
  const bob = await connect('token=bob&since=0')
  assert.equal(bob.welcome?.seq, 0, 'no seq was taken for bob')
  assert.equal((await app.wsc.sendToUser('bob', 'from the server')).seq, 1, 'the server API still reaches users')
  assert.equal((await bob.next('message')).data, 'from the server')
})

test('publish to a user, once authorizePublish allows it, reaches every device of that user with the next seq', async (t) => {
  const { connect } = await buildInProcess(t, { authorizePublish: directMessages })
  const alice = await connect('token=alice')
  const phone = await connect('token=bob')
  const laptop = await connect('token=bob')
  alice.send({ type: 'publish', id: 'c-1', to: { user: 'bob' }, data: 'hi bob' })
  await alice.next('ack')
  for (const device of [phone, laptop]) {
    const message = await device.next('message')
    assert.equal(message.seq, 1)
    assert.equal(message.from, 'alice')
    assert.deepEqual(message.to, { user: 'bob' })
  }
})

test('ack of a seq means a later connection replays nothing older', async (t) => {
  const { app, connect } = await buildInProcess(t)
  for (let i = 1; i <= 3; i++) await app.wsc.sendToUser('carol', i)
  const first = await connect('token=carol')
  assert.deepEqual((await first.take('message', 3)).map((m) => m.seq), [1, 2, 3])
  first.send({ type: 'ack', seq: 2, id: 'a-1' })
  await first.next('ack')
  await first.close()
  const second = await connect('token=carol')
  assert.deepEqual((await second.take('message', 1)).map((m) => m.data), [3])
  second.send({ type: 'ping' })
  await second.next('pong')
  assert.equal(second.frames.length, 0)
})

test('the frame rate limit covers publishes to rooms and to users alike', async (t) => {
  const { connect } = await buildInProcess(t, { authorizePublish: directMessages, websocket: { rateLimit: 1, rateBurst: 4, rateLimitStrikes: 100 } })
  const alice = await connect('token=alice')
  alice.send({ type: 'join', room: 'lobby', id: 'j' })
  await alice.next('ack')
  for (let i = 0; i < 6; i++) alice.send({ type: 'publish', id: `p-${i}`, to: i % 2 === 0 ? { user: `u${i}` } : { room: 'lobby' }, data: i })
  // A burst of 4 (the join took one), refilled at 1 per second: the last three are refused, whatever their target.
  const refused = await alice.take('error', 3)
  assert.deepEqual(refused.map((frame) => [frame.id, frame.code]), [['p-3', 'RATE_LIMITED'], ['p-4', 'RATE_LIMITED'], ['p-5', 'RATE_LIMITED']])
  assert.deepEqual((await alice.take('ack', 3)).map((frame) => frame.id), ['p-0', 'p-1', 'p-2'])
})

test('publishing to a room not joined is FORBIDDEN; the connection stays', async (t) => {
  const { connect } = await buildInProcess(t)
  const alice = await connect('token=alice')
  alice.send({ type: 'publish', id: 'c-1', to: { room: 'secret' }, data: 1 })
  const error = await alice.next('error')
  assert.equal(error.code, 'FORBIDDEN')
  assert.equal(error.id, 'c-1')
  alice.send({ type: 'ping' })
  await alice.next('pong')
})

test('authorizeJoin and authorizePublish decide, and their refusals are FORBIDDEN', async (t) => {
  const { connect } = await buildInProcess(t, {
    authorizeJoin: ({ room }) => room.startsWith('public:'),
    authorizePublish: ({ to }) => !('user' in to) || to.user !== 'ceo'
  })
  const alice = await connect('token=alice')
  alice.send({ type: 'join', room: 'private:x', id: 'j-1' })
  assert.deepEqual(await alice.next('error'), { type: 'error', id: 'j-1', code: 'FORBIDDEN', message: 'not allowed to join private:x' })
  alice.send({ type: 'join', room: 'public:x', id: 'j-2' })
  await alice.next('joined')
  alice.send({ type: 'publish', id: 'p-1', to: { user: 'ceo' }, data: 1 })
  assert.equal((await alice.next('error')).code, 'FORBIDDEN')
  alice.send({ type: 'publish', id: 'p-2', to: { room: 'public:x' }, data: 1 })
  await alice.next('message')
})

test('leaving a room the connection is not in is NOT_FOUND', async (t) => {
  const { connect } = await buildInProcess(t)
  const alice = await connect('token=alice')
  alice.send({ type: 'leave', room: 'nowhere', id: 'l-1' })
  const error = await alice.next('error')
  assert.equal(error.code, 'NOT_FOUND')
  assert.equal(error.id, 'l-1')
})

test('bad JSON, a non-object, an unknown type and a missing field get error frames; the connection stays', async (t) => {
  const { connect } = await buildInProcess(t)
  const client = await connect('token=alice')
  client.send('{nope')
  assert.equal((await client.next('error')).code, 'BAD_REQUEST')
  client.send('[1,2,3]')
  assert.equal((await client.next('error')).code, 'BAD_REQUEST')
  client.send({ type: 'teleport', id: 'x-1' })
  assert.deepEqual(await client.next('error'), { type: 'error', id: 'x-1', code: 'UNKNOWN_TYPE', message: 'unknown frame type "teleport"' })
  client.send({ type: 'publish', id: 'x-2', to: { user: 'bob' } })
  const missing = await client.next('error')
  assert.equal(missing.code, 'BAD_REQUEST')
  assert.equal(missing.id, 'x-2')
  client.send({ type: 'ping' })
  await client.next('pong')
  assert.equal(client.socket.readyState, client.socket.OPEN)
})

test('rooms returned by authenticate are joined at once', async (t) => {
  const { connect } = await buildInProcess(t, { authenticate: () => ({ userId: 'dana', rooms: ['team:1', 'all'] }) })
  const client = await connect()
  assert.deepEqual(await client.take('joined', 2), [{ type: 'joined', room: 'team:1' }, { type: 'joined', room: 'all' }])
  client.send({ type: 'publish', id: 'p', to: { room: 'team:1' }, data: 'x' })
  await client.next('message')
})

test('the wsc.bearer subprotocol is answered with wsc.v1, never with the token', async (t) => {
  const { url } = await build(t, {
    authenticate: (request) => {
      const offered = String(request.headers['sec-websocket-protocol'] ?? '')
      const token = offered.split(',').map((s) => s.trim()).find((s) => s.startsWith('wsc.bearer.'))
      return token === undefined ? null : { userId: token.slice('wsc.bearer.'.length) }
    }
  })
  const client = await TestClient.connect(url(), { protocols: ['wsc.v1', 'wsc.bearer.erin'] })
  assert.equal(client.socket.protocol, 'wsc.v1')
})
