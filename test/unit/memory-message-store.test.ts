import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryMessageStore } from '../../lib/store/memory-message-store.js'

const message = (n: number) => ({ id: `m${n}`, from: null, to: { user: 'u' }, dataJson: String(n), ts: n })

test('seq is per user, strictly increasing from 1', async () => {
  const store = new MemoryMessageStore(10)
  assert.equal((await store.append('u', message(1))).seq, 1)
  assert.equal((await store.append('u', message(2))).seq, 2)
  assert.equal((await store.append('v', message(3))).seq, 1)
  assert.equal((await store.head('u')).latestSeq, 2)
  assert.equal((await store.head('nobody')).latestSeq, 0)
})

test('since returns exactly the messages after the given seq, in order, bounded by the window', async () => {
  const store = new MemoryMessageStore(100)
  for (let i = 1; i <= 250; i++) await store.append('u', message(i))
  assert.deepEqual((await store.since('u', 240, 100)).map((m) => m.seq), [241, 242, 243, 244, 245, 246, 247, 248, 249, 250])
  assert.deepEqual((await store.since('u', 0, 3)).map((m) => m.seq), [151, 152, 153], 'older than the window: from the oldest kept')
  assert.deepEqual(await store.since('u', 250, 10), [])
  assert.deepEqual(await store.since('nobody', 0, 10), [])
})

test('ack never moves backwards nor past the latest seq', async () => {
  const store = new MemoryMessageStore(10)
  for (let i = 1; i <= 5; i++) await store.append('u', message(i))
  await store.ack('u', 3)
  await store.ack('u', 2)
  assert.equal(await store.ackedSeq('u'), 3)
  await store.ack('u', 99)
  assert.equal(await store.ackedSeq('u'), 5)
})
