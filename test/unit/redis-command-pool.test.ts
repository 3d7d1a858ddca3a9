import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { poolIndex, RedisCommandPool } from '../../lib/redis/command-pool.js'

test('a user always maps to the same pool connection, whatever else happens in between', () => {
  const ids = ['alice', 'bob', 'carol', '', 'ü-ñ-中文', 'x'.repeat(500)]
  const first = ids.map((id) => poolIndex(id, 4))
  for (let i = 0; i < 1000; i++) poolIndex(`other-${i}`, 4)
  assert.deepEqual(ids.map((id) => poolIndex(id, 4)), first)
  // Pinned values: the chooser depends on nothing but the id and the size (FNV-1a, 32 bit).
  assert.deepEqual(['alice', 'bob', 'carol'].map((id) => poolIndex(id, 4)), [3, 0, 2])
})

test('the chooser stays in range and spreads users over every connection', () => {
  for (const size of [1, 2, 3, 4, 7, 16, 256]) {
    const counts = new Array<number>(size).fill(0)
    const users = size * 250
    for (let i = 0; i < users; i++) {
      const index = poolIndex(`user-${i}`, size)
      assert.ok(Number.isInteger(index) && index >= 0 && index < size, `${index} in 0..${size - 1}`)
      counts[index] = (counts[index] ?? 0) + 1
    }
    // Each connection gets between half and twice its fair share of 250 users.
    for (const [index, count] of counts.entries()) assert.ok(count >= 125 && count <= 500, `size ${size}: connection ${index} serves ${count} users`)
  }
})

test('min_idle_conns counts 0 as 1 and at most the pool size', async () => {
  // Clients that never connect (lazyConnect): only the pool's arithmetic is under test here.
  const clients = [new Redis({ lazyConnect: true }), new Redis({ lazyConnect: true })]
  const pools = [0, 1, 2, 9].map((minReady) => new RedisCommandPool(clients, { minReady }))
  assert.deepEqual(pools.map((pool) => pool.minReady), [1, 1, 2, 2])
  assert.equal(new RedisCommandPool(clients).minReady, 1)
  await Promise.all(pools.map((pool) => pool.close()))
})
