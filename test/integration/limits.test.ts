import { test } from 'node:test'
import assert from 'node:assert/strict'
import { errors } from '../../plugins/index.js'
import { build, TestClient, within } from '../helper.js'

test('no credentials: HTTP 401, not a silent close', async (t) => {
  const { url } = await build(t)
  const refusal = await TestClient.refusal(url())
  assert.equal(refusal.statusCode, 401)
})

test('authenticate throwing ForbiddenError: HTTP 403', async (t) => {
  const { url } = await build(t, {
    authenticate: () => {
      throw new errors.ForbiddenError('banned')
    }
  })
  const refusal = await TestClient.refusal(url())
  assert.equal(refusal.statusCode, 403)
  assert.deepEqual(pick(JSON.parse(refusal.body)), { statusCode: 403, error: 'Forbidden', message: 'banned' })
})

test('ForbiddenError and UnauthorizedError without a message: Fastify\'s error body with a readable default', async (t) => {
  for (const [Refusal, statusCode, error, message] of [[errors.ForbiddenError, 403, 'Forbidden', 'forbidden'], [errors.UnauthorizedError, 401, 'Unauthorized', 'unauthorized']] as const) {
    const { url } = await build(t, {
      authenticate: () => {
        throw new Refusal()
      }
    })
    const refusal = await TestClient.refusal(url())
    assert.equal(refusal.statusCode, statusCode)
    assert.deepEqual(pick(JSON.parse(refusal.body)), { statusCode, error, message })
  }
})

function pick (body: { statusCode?: unknown, error?: unknown, message?: unknown }): Record<string, unknown> {
  return { statusCode: body.statusCode, error: body.error, message: body.message }
}

test('at max_connections: HTTP 503 with Retry-After; a slot frees when a client leaves', async (t) => {
  const { url } = await build(t, { websocket: { maxConnections: 2 } })
  const first = await TestClient.connect(url('token=a'))
  await TestClient.connect(url('token=b'))
  const refusal = await TestClient.refusal(url('token=c'))
  assert.equal(refusal.statusCode, 503)
  assert.equal(refusal.headers['retry-after'], '5')
  await first.close()
  const deadline = Date.now() + 5000
  let client: TestClient | undefined
  while (client === undefined && Date.now() < deadline) {
    client = await TestClient.connect(url('token=c')).catch(() => undefined)
  }
  assert.ok(client, 'a connection is accepted once a slot is free')
})

test('a plain GET on /ws is 400; a malformed since is 400', async (t) => {
  const { app, url } = await build(t)
  const response = await app.inject({ method: 'GET', url: '/ws' })
  assert.equal(response.statusCode, 400)
  assert.equal((await TestClient.refusal(url('token=a&since=-3'))).statusCode, 400)
  assert.equal((await TestClient.refusal(url('token=a&since=abc'))).statusCode, 400)
})

test('a frame over max_payload closes with 1009', async (t) => {
  const { url } = await build(t, { websocket: { maxPayload: 1024 } })
  const client = await TestClient.connect(url('token=a'))
  client.send({ type: 'publish', to: { user: 'b' }, data: 'x'.repeat(2000) })
  assert.equal((await within(client.closed, 5000, 'close')).code, 1009)
})

test('a binary frame closes with 1003 and counts as an invalid frame', async (t) => {
  const { app, url } = await build(t)
  const client = await TestClient.connect(url('token=a'))
  client.socket.send(Buffer.from([1, 2, 3]), { binary: true })
  assert.equal((await within(client.closed, 5000, 'close')).code, 1003)
  const framesIn = await app.wscMetrics.registry.getSingleMetric('wsc_frames_in_total')?.get()
  assert.equal(framesIn?.values.find((sample) => sample.labels.type === 'invalid')?.value, 1)
})

test('over the frame rate: RATE_LIMITED error frames, then 1008 on sustained abuse', async (t) => {
  const { url } = await build(t, { websocket: { rateLimit: 5, rateBurst: 5, rateLimitStrikes: 10 } })
  const client = await TestClient.connect(url('token=a'))
  for (let i = 0; i < 30; i++) client.send({ type: 'ping', id: `p-${i}` })
  const limited = await client.next('error')
  assert.equal(limited.code, 'RATE_LIMITED')
  assert.match(String(limited.id), /^p-\d+$/)
  const closed = await within(client.closed, 5000, 'close')
  assert.equal(closed.code, 1008)
  assert.equal(client.frames.filter((f) => f.type === 'pong').length, 5, 'the burst of 5 went through')
})

test('max_connections_per_user closes that user\'s oldest connection with 1008', async (t) => {
  const { url } = await build(t, { websocket: { maxConnectionsPerUser: 2 } })
  const oldest = await TestClient.connect(url('token=a'))
  const middle = await TestClient.connect(url('token=a'))
  const other = await TestClient.connect(url('token=b'))
  const newest = await TestClient.connect(url('token=a'))
  assert.equal((await within(oldest.closed, 5000, 'close of the oldest')).code, 1008)
  for (const client of [middle, newest, other]) {
    client.send({ type: 'ping' })
    await client.next('pong')
  }
})

test('a client that stops answering pings is reaped after two missed heartbeats', async (t) => {
  const { app, url } = await build(t, { websocket: { heartbeatInterval: 100 } })
  const client = await TestClient.connect(url('token=a'))
  const alive = await TestClient.connect(url('token=b'))
  assert.equal(await app.wsc.onlineCount(), 2)
  client.socket.pause()
  await within(new Promise<void>((resolve) => {
    app.wsc.on('disconnect', (event) => { if (event.userId === 'a') resolve() })
  }), 5000, 'the dead connection to be reaped')
  assert.equal(await app.wsc.isOnline('a'), false)
  assert.equal(await app.wsc.isOnline('b'), true, 'a client that answers pings stays')
  alive.send({ type: 'ping' })
  await alive.next('pong')
})

test('a client that never reads gets 1013 while 50 others receive every one of 2,000 messages', async (t) => {
  // The slow client reads again only after the 2,000 messages: until then the server keeps its connection
  // (a client that has not read its close within close_timeout is dropped, and sees 1006, not 1013).
  const { app, url } = await build(t, { websocket: { messageBufferSize: 100, maxBufferedBytes: '256KiB', closeTimeout: '60s' }, drain: { timeout: '90s' } })
  const readers = await Promise.all(Array.from({ length: 50 }, (_, i) => TestClient.connect(url(`token=reader-${i}`))))
  const slow = await TestClient.connect(url('token=slow'))
  for (const client of [...readers, slow]) {
    client.send({ type: 'join', room: 'feed' })
    await client.next('joined')
  }
  slow.socket.pause()
  // 2,000 x 4 KiB is more than the kernel buffers of one loopback connection hold (~4 MiB here).
  const payload = 'x'.repeat(4096)
  for (let i = 0; i < 2000; i++) {
    await app.wsc.sendToRoom('feed', { i, payload })
    // Paced by the readers (not by the paused client): each batch is read before the next is sent.
    if (i % 100 === 99) await Promise.all(readers.map((reader) => reader.received('message', i + 1, 20_000)))
  }
  const counts = await Promise.all(readers.map(async (reader) => {
    const messages = await reader.take('message', 2000, 30_000)
    assert.deepEqual(messages.map((m) => (m.data as { i: number }).i), Array.from({ length: 2000 }, (_, i) => i))
    return messages.length
  }))
  assert.deepEqual(counts, Array(50).fill(2000))
  slow.socket.resume()
  assert.equal((await within(slow.closed, 30_000, 'the slow consumer close')).code, 1013)
})
