import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RateLimiter, STRIKE_WINDOW_MS } from '../../lib/node/rate-limiter.js'

test('a burst is allowed, then the rate; refusals count as strikes within a window', () => {
  const limiter = new RateLimiter(10, 5, 0)
  for (let i = 0; i < 5; i++) assert.equal(limiter.take(0), true)
  assert.equal(limiter.take(0), false)
  assert.equal(limiter.take(100), true, 'one token back after 100 ms at 10/s')
  assert.equal(limiter.take(100), false)
  assert.equal(limiter.strike(100), 1)
  assert.equal(limiter.strike(200), 2)
  assert.equal(limiter.strike(200 + STRIKE_WINDOW_MS + 1), 1, 'a new window starts over')
})

test('rate 0 disables the limit', () => {
  const limiter = new RateLimiter(0, 1, 0)
  for (let i = 0; i < 1000; i++) assert.equal(limiter.take(0), true)
})
