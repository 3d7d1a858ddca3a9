import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { parsePrometheusText, valueOf } from '../prometheus-text.js'
import { startNodes, uniquePrefix } from '../redis-harness.js'
import { connect } from './redis-scenarios.js'
import { waitFor } from '../helper.js'

/** `wsc_publish_to_write_seconds_count` on the node's metrics port. */
async function publishToWriteCount (app: FastifyInstance): Promise<number> {
  const port = app.wscMetrics.port
  assert.ok(port !== undefined && port > 0, 'the metrics server listens')
  const response = await fetch(`http://127.0.0.1:${port}/metrics`)
  assert.equal(response.status, 200)
  return valueOf(parsePrometheusText(await response.text()), 'wsc_publish_to_write_seconds_count') ?? Number.NaN
}

test('a message sent on one node and written on another adds a publish-to-write sample on the receiving node', async (t) => {
  const [a, b] = await startNodes(t, 2, { prefix: uniquePrefix() })
  assert.ok(a && b)
  const bob = await connect(t, b, 'bob')
  assert.equal(await publishToWriteCount(b.app), 0)

  const sent = await a.app.wsc.sendToUser('bob', { text: 'across nodes' })
  assert.equal((await bob.next('message')).id, sent.id)
  // The sample is taken when the socket write completes, which may be just after the client read it.
  const count = await waitFor(async () => {
    const n = await publishToWriteCount(b.app)
    return n > 0 ? n : undefined
  }, 5000, 'a wsc_publish_to_write_seconds sample on the receiving node')
  assert.equal(count, 1)
  assert.equal(await publishToWriteCount(a.app), 0, 'the sending node wrote nothing to a socket')
})
