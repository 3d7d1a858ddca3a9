import { test } from 'node:test'
import assert from 'node:assert/strict'
import { build, TestClient } from '../helper.js'

test('welcome names the node, the connection and the user, with the latest seq', async (t) => {
  const { app, url } = await build(t)
  await app.wsc.sendToUser('alice', 'before')
  const client = new TestClient(url('token=alice'))
  const welcome = await client.next('welcome')
  assert.equal(welcome.nodeId, 'test-node')
  assert.equal(welcome.userId, 'alice')
  assert.equal(welcome.heartbeatMs, 30000)
  assert.equal(welcome.seq, 1)
  assert.match(String(welcome.connectionId), /^test-node~/)
  assert.equal(client.frames.length === 0 || client.frames[0]?.type === 'message', true)
  await client.close()
})
