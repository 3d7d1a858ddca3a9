import { test } from 'node:test'
import assert from 'node:assert/strict'
import { build, TestClient, within } from '../helper.js'

test('app.wsc.drain(): not ready and refusing at once, reconnect + 1012 for everyone, then sends are refused', async (t) => {
  const { app, url } = await build(t)
  const http = url().replace(/^ws/, 'http').replace(/\/ws$/, '')
  const clients = await Promise.all(['a', 'b', 'c'].map((user) => TestClient.connect(url(`token=${user}`))))
  assert.equal(app.wsc.draining, false)

  const drained = app.wsc.drain({ windowMs: 300, delayMs: 0, reconnectJitterMs: 50 })
  assert.equal(app.wsc.draining, true)
  assert.equal(app.wsc.drain(), drained, 'a second call joins the drain under way')
  assert.equal((await fetch(`${http}/ready`)).status, 503)
  assert.equal((await fetch(`${http}/health`)).status, 200)
  const refusal = await TestClient.refusal(url('token=late'))
  assert.equal(refusal.statusCode, 503)
  assert.equal(refusal.headers['retry-after'], '5')

  await within(drained, 5000, 'the drain')
  for (const client of clients) {
    const reconnect = await client.next('reconnect')
    assert.ok((reconnect.afterMs as number) >= 0 && (reconnect.afterMs as number) <= 50)
    assert.equal((await client.closed).code, 1012)
  }
  assert.equal(app.wsc.health().connections, 0)
  assert.equal(app.wsc.health().router.up, false, 'the node deregistered: its router is closed')
  await assert.rejects(app.wsc.sendToUser('a', 'too late'), { code: 'WSC_ERR_CLOSED' })
})

test('closing the app during a long drain cuts it short: the clients not reached yet get 1001', async (t) => {
  const { app, url } = await build(t)
  const clients = await Promise.all(['a', 'b', 'c', 'd'].map((user) => TestClient.connect(url(`token=${user}`))))
  const drained = app.wsc.drain({ windowMs: 600_000, delayMs: 0, reconnectJitterMs: 0 })
  assert.equal((await within(clients[0]?.closed ?? Promise.reject(new Error('no client')), 5000, 'the first close')).code, 1012)

  await within(app.close(), 10_000, 'app.close()')
  await within(drained, 1000, 'the drain to end with the close')
  const codes = await Promise.all(clients.slice(1).map(async (client) => (await client.closed).code))
  assert.deepEqual(codes, [1001, 1001, 1001])
})
