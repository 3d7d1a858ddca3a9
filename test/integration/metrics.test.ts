import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { build, directMessages, TestClient, type Frame } from '../helper.js'
import { parsePrometheusText, valueOf, type Sample } from '../prometheus-text.js'

async function scrape (app: FastifyInstance): Promise<Sample[]> {
  const port = app.wscMetrics.port
  assert.ok(port !== undefined && port > 0, 'the metrics server listens')
  const response = await fetch(`http://127.0.0.1:${port}/metrics`)
  assert.equal(response.status, 200)
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  return parsePrometheusText(await response.text())
}

/** Scrapes until `ready` holds (metrics settle when socket writes complete), at most `ms`. */
async function scrapeUntil (app: FastifyInstance, ready: (samples: Sample[]) => boolean, ms = 5000): Promise<Sample[]> {
  const deadline = Date.now() + ms
  for (;;) {
    const samples = await scrape(app)
    if (ready(samples) || Date.now() > deadline) return samples
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('metrics on the metrics port count connections, frames and messages; the public port has no /metrics', async (t) => {
  const { app, url } = await build(t, { metrics: { port: 0, host: '127.0.0.1', routeMetrics: true }, authorizePublish: directMessages })
  const users = ['u0', 'u1', 'u2', 'u3', 'u4']
  const clients = await Promise.all(users.map((user) => TestClient.connect(url(`token=${user}`))))
  const [sender, receiver] = clients as [TestClient, TestClient]
  for (let i = 0; i < 20; i++) sender.send({ type: 'publish', id: `c-${i}`, to: { user: 'u1' }, data: { i } })
  await sender.take('ack', 20)
  const received = await receiver.take('message', 20)
  assert.deepEqual(received.map((frame: Frame) => (frame.data as { i: number }).i), [...Array(20).keys()])

  let samples = await scrapeUntil(app, (s) => valueOf(s, 'wsc_delivery_latency_seconds_count') === 20)
  assert.equal(valueOf(samples, 'wsc_connections'), 5)
  assert.equal(valueOf(samples, 'wsc_connections_opened_total'), 5)
  assert.equal(valueOf(samples, 'wsc_frames_in_total', { type: 'publish' }), 20)
  assert.equal(valueOf(samples, 'wsc_frames_in_total', { type: 'invalid' }), 0)
  assert.equal(valueOf(samples, 'wsc_messages_sent_total', { target: 'user' }), 20)
  assert.equal(valueOf(samples, 'wsc_messages_out_total', { target: 'user' }), 20)
  assert.equal(valueOf(samples, 'wsc_messages_out_total', { target: 'room' }), 0)
  assert.equal(valueOf(samples, 'wsc_delivery_latency_seconds_count'), 20)
  assert.equal(valueOf(samples, 'wsc_publish_to_write_seconds_count'), 20)
  assert.equal(valueOf(samples, 'wsc_delivery_latency_seconds_bucket', { le: '+Inf' }), 20)
  for (const reason of ['slow_consumer', 'rate_limit', 'payload']) {
    assert.equal(valueOf(samples, 'wsc_dropped_total', { reason }), 0, reason)
  }
  assert.equal(valueOf(samples, 'wsc_router_up'), 1)
  assert.equal(valueOf(samples, 'wsc_store_up'), 1)
  assert.equal(valueOf(samples, 'wsc_cluster_nodes'), 1)
  assert.equal(valueOf(samples, 'wsc_draining'), 0)
  assert.ok(Number.isNaN(valueOf(samples, 'wsc_router_probe_latency_seconds')), 'the in-memory router does not probe')
  assert.ok((valueOf(samples, 'process_cpu_user_seconds_total') ?? 0) > 0, 'default process metrics')
  assert.ok(samples.some((s) => s.name === 'nodejs_heap_size_used_bytes'), 'default Node.js metrics')

  // The public port: no /metrics, and its routes are measured (routeMetrics).
  const base = url().replace(/^ws/, 'http').replace(/\/ws$/, '')
  assert.equal((await fetch(`${base}/metrics`)).status, 404)
  const refusal = await TestClient.refusal(url())
  assert.equal(refusal.statusCode, 401)
  await assert.rejects(app.wsc.sendToUser('u1', 'x'.repeat(70 * 1024)), { code: 'WSC_ERR_PAYLOAD' })
  sender.socket.close(1000)
  receiver.socket.close(1000)
  await Promise.all([sender.closed, receiver.closed])

  samples = await scrapeUntil(app, (s) => valueOf(s, 'wsc_connections') === 3)
  assert.equal(valueOf(samples, 'wsc_connections'), 3)
  assert.equal(valueOf(samples, 'wsc_connections_closed_total', { code: '1000' }), 2)
  assert.equal(valueOf(samples, 'wsc_upgrades_refused_total', { status: '401' }), 1)
  assert.equal(valueOf(samples, 'wsc_dropped_total', { reason: 'payload' }), 1)
  assert.equal(valueOf(samples, 'http_request_duration_seconds_count', { route: '/ws', method: 'GET', status_code: '401' }), 1)
  assert.equal(valueOf(samples, 'http_request_duration_seconds_count', { route: '__unknown__', method: 'GET', status_code: '404' }), 1)
  await Promise.all(clients.slice(2).map((client) => client.close()))
})

test('each app counts in its own registry: rate-limit and slow-consumer drops land in the app that dropped', async (t) => {
  const first = await build(t)
  const limitedApp = await build(t, { websocket: { rateLimit: 1, rateBurst: 1 } })
  const tinyBufferApp = await build(t, { websocket: { messageBufferSize: 1 } })
  assert.notEqual(first.app.wscMetrics.port, limitedApp.app.wscMetrics.port)
  const bystander = await TestClient.connect(first.url('token=a'))

  const chatty = await TestClient.connect(limitedApp.url('token=b'))
  for (let i = 0; i < 4; i++) chatty.send({ type: 'ping' })
  await chatty.next('pong')
  const refusals = await chatty.take('error', 3)
  assert.ok(refusals.every((frame) => frame.code === 'RATE_LIMITED'))
  const limited = await scrapeUntil(limitedApp.app, (s) => valueOf(s, 'wsc_dropped_total', { reason: 'rate_limit' }) === 3)
  assert.equal(valueOf(limited, 'wsc_dropped_total', { reason: 'rate_limit' }), 3)
  assert.equal(valueOf(limited, 'wsc_frames_in_total', { type: 'ping' }), 4)

  const slow = await TestClient.connect(tinyBufferApp.url('token=c'))
  // Five messages handed over in one turn: the one-frame buffer overflows and the connection closes 1013.
  await Promise.all([1, 2, 3, 4, 5].map((i) => tinyBufferApp.app.wsc.sendToUser('c', i)))
  assert.equal((await slow.closed).code, 1013)
  const tiny = await scrapeUntil(tinyBufferApp.app, (s) => valueOf(s, 'wsc_connections_closed_total', { code: '1013' }) === 1)
  assert.equal(valueOf(tiny, 'wsc_dropped_total', { reason: 'slow_consumer' }), 1)
  assert.equal(valueOf(tiny, 'wsc_connections_closed_total', { code: '1013' }), 1)
  assert.equal(valueOf(tiny, 'wsc_dropped_total', { reason: 'rate_limit' }), 0)

  const untouched = await scrape(first.app)
  assert.equal(valueOf(untouched, 'wsc_connections_opened_total'), 1)
  assert.equal(valueOf(untouched, 'wsc_connections'), 1)
  assert.equal(valueOf(untouched, 'wsc_frames_in_total', { type: 'ping' }), 0)
  assert.equal(valueOf(untouched, 'wsc_dropped_total', { reason: 'rate_limit' }), 0)
  assert.equal(valueOf(untouched, 'wsc_dropped_total', { reason: 'slow_consumer' }), 0)
  await Promise.all([bystander.close(), chatty.close()])
})
