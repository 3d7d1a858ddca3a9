import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RedisKeys } from '../../lib/redis/keys.js'
import { RedisMessageStore } from '../../lib/redis/message-store.js'
import { privateRedis, testRedis } from '../backends.js'

function message (text: string, from: string | null = 'sender'): { id: string, from: string | null, to: { user: string }, dataJson: string, ts: number } {
  return { id: randomUUID(), from, to: { user: 'ignored' }, dataJson: JSON.stringify({ text }), ts: Date.now() }
}

const texts = (messages: Array<{ dataJson: string }>): string[] => messages.map((m) => (JSON.parse(m.dataJson) as { text: string }).text)

test('appends get strictly increasing seqs and replay in order from the stream', async (t) => {
  const { client, prefix } = await testRedis(t)
  const store = new RedisMessageStore(client, { prefix, inboxSize: 100 })
  // Asking about a user with no stream creates nothing; the first message starts a counter far above 0.
  assert.deepEqual(await store.head('ann'), { epoch: await store.head('zed').then((head) => head.epoch), latestSeq: 0, oldestSeq: 0 })
  assert.equal(await client.exists(`${prefix}seq:{ann}`, `${prefix}inbox:{ann}`), 0)
  const sent = await Promise.all(Array.from({ length: 30 }, (_, i) => store.append('ann', message(`m${i}`, i === 0 ? null : 'bob'))))
  const seqs = sent.map((m) => m.seq)
  assert.ok((seqs[0] as number) > 1)
  for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], (seqs[i - 1] as number) + 1)
  assert.ok(Number.isSafeInteger(seqs.at(-1)))
  assert.ok(String(seqs.at(-1)).length <= 15, 'a seq fits the since= query parameter (15 digits)')
  assert.equal((await store.head('ann')).latestSeq, seqs.at(-1))
  assert.equal((await store.head('ann')).oldestSeq, seqs[0])
  const first = seqs[0] as number
  const replay = await store.since('ann', first + 9, 5)
  assert.deepEqual(replay.map((m) => m.seq), seqs.slice(10, 15))
  assert.deepEqual(texts(replay), ['m10', 'm11', 'm12', 'm13', 'm14'])
  assert.deepEqual(replay[0], { ...sent[10], to: { user: 'ann' } })
  assert.equal((await store.since('ann', 0, 1))[0]?.from, null)
  assert.deepEqual(await store.since('ann', seqs.at(-1) as number, 10), [])
  assert.deepEqual(await store.since('nobody', 0, 10), [])
  assert.equal(await client.type(new RedisKeys(prefix).inbox('ann')), 'stream')
})

test('the stream keeps about inbox_size messages: the newest ones', async (t) => {
  const { client, prefix } = await testRedis(t)
  const store = new RedisMessageStore(client, { prefix, inboxSize: 50 })
  const sent = []
  for (let i = 0; i < 400; i++) sent.push(await store.append('ann', message(`m${i}`)))
  const kept = await store.since('ann', 0, 1000)
  assert.ok(kept.length >= 50 && kept.length < 400, `${kept.length} kept`)
  assert.deepEqual(kept.map((m) => m.seq), sent.slice(-kept.length).map((m) => m.seq))
})

test('per-user keys outlive every write by retention_age (up to 1 % more), refreshed only when due, and a key lost alone gets its expiry back', async (t) => {
  const { client, prefix } = await testRedis(t)
  const ttl = 60_000
  const store = new RedisMessageStore(client, { prefix, inboxSize: 3, retentionAge: ttl })
  const keys = new RedisKeys(prefix)
  const names = [keys.seq('ann'), keys.inbox('ann'), keys.inboxBytes('ann')]
  const left = async (): Promise<number[]> => Promise.all(names.map(async (key) => client.pttl(key)))
  const expiresWithin = async (what: string): Promise<number[]> => {
    const ttls = await left()
    for (const [i, pttl] of ttls.entries()) assert.ok(pttl > ttl - 1000 && pttl <= ttl * 1.01, `${what}: ${names[i] ?? ''} has ${pttl} ms left`)
    return ttls
  }

  await store.append('ann', message('first'))
  await expiresWithin('a new user')
  // Still more than retention_age left, but less than a refresh gives: the next write leaves it alone.
  for (const key of names) await client.pexpire(key, ttl + 200)
  await store.append('ann', message('second'))
  const notDue = await expiresWithin('a write while more than retention_age is left')
  assert.ok(notDue.every((pttl) => pttl <= ttl + 200), `no refresh while the keys have more than retention_age left: ${notDue.join(', ')}`)

  // As if time passed: the keys have less than retention_age left, so the next write refreshes them.
  for (const key of names) await client.pexpire(key, ttl - 5000)
  await store.append('ann', message('third'))
  const refreshed = await expiresWithin('a write once less than retention_age was left')
  assert.ok(refreshed.every((pttl) => pttl > ttl), `refreshed past retention_age: ${refreshed.join(', ')}`)

  // Trimming rewrites the byte count: it keeps its expiry.
  await store.append('ann', message('fourth'))
  assert.equal(await client.xlen(keys.inbox('ann')), 3)
  await expiresWithin('after a trim')

  // A key evicted or deleted alone comes back with an expiry, though the others are not due.
  for (const key of names) {
    await client.del(key)
    await store.append('ann', message(`after losing ${key}`))
    await expiresWithin(`after ${key} was lost`)
  }
})

test('ack never moves backwards nor past the latest seq', async (t) => {
  const { client, prefix } = await testRedis(t)
  const store = new RedisMessageStore(client, { prefix })
  await store.ack('nobody', 5)
  assert.equal(await store.ackedSeq('nobody'), 0)
  const [a, b, c] = await Promise.all([store.append('ann', message('a')), store.append('ann', message('b')), store.append('ann', message('c'))])
  await store.ack('ann', b?.seq as number)
  await store.ack('ann', a?.seq as number)
  assert.equal(await store.ackedSeq('ann'), b?.seq)
  await store.ack('ann', (c?.seq as number) + 1000)
  assert.equal(await store.ackedSeq('ann'), c?.seq)
})

test('Redis flushed mid-test: later seqs are larger than every earlier one, and resume still works', async (t) => {
  const { client } = await privateRedis(t)
  const store = new RedisMessageStore(client, { prefix: 'wsc:' })
  const before = []
  for (let i = 0; i < 20; i++) before.push(await store.append('ann', message(`before${i}`)))
  const lastBefore = before.at(-1)?.seq as number
  const epochBefore = (await store.head('ann')).epoch
  await client.flushall()
  const head = await store.head('ann')
  assert.equal(head.latestSeq, 0, 'the flush lost the counter')
  assert.notEqual(head.epoch, epochBefore, 'a Redis that lost its data names a new epoch')
  const after = []
  for (let i = 0; i < 20; i++) after.push(await store.append('ann', message(`after${i}`)))
  assert.ok((after[0]?.seq as number) > lastBefore, `${after[0]?.seq} > ${lastBefore}`)
  for (let i = 1; i < after.length; i++) assert.ok((after[i]?.seq as number) > (after[i - 1]?.seq as number))
  // A client that had everything up to lastBefore resumes with since=lastBefore and gets the rest.
  assert.deepEqual(texts(await store.since('ann', lastBefore, 100)), after.map((_, i) => `after${i}`))
})

test('a counter lost while the stream survived continues after the stream', async (t) => {
  const { client, prefix } = await testRedis(t)
  const store = new RedisMessageStore(client, { prefix })
  const keys = new RedisKeys(prefix)
  const first = await store.append('ann', message('first'))
  // A stream entry far in the future of the clock-based start (as if the clock went back).
  await client.del(keys.seq('ann'), keys.inbox('ann'))
  await client.xadd(keys.inbox('ann'), '900000000000000-0', 'i', randomUUID(), 'ts', '0', 'd', '"future"')
  const next = await store.append('ann', message('next'))
  assert.ok(next.seq > first.seq)
  assert.equal(next.seq, 900000000000001)
})

test('Redis unreachable: appends and reads reject with WSC_ERR_UNAVAILABLE, status says so', async (t) => {
  const { client, stop } = await privateRedis(t)
  const store = new RedisMessageStore(client, { prefix: 'wsc:' })
  assert.equal(store.status().up, true)
  await stop()
  await assert.rejects(store.append('ann', message('x')), { code: 'WSC_ERR_UNAVAILABLE' })
  await assert.rejects(store.since('ann', 0, 10), { code: 'WSC_ERR_UNAVAILABLE' })
  assert.equal(store.status().up, false)
  assert.match(store.status().detail, /^redis: /)
})
