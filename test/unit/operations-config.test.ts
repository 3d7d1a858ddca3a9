import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfig } from '../../lib/config.js'

test('operations keys have their defaults and their env vars', () => {
  const defaults = loadConfig({ env: {} })
  assert.deepEqual(defaults.metrics, { enabled: true, port: 8081, host: '0.0.0.0' })
  assert.deepEqual(defaults.drain, { window: 10_000, delay: 0, reconnectJitter: 5000, timeout: 25_000 })
  assert.equal(defaults.health.maxEventLoopDelay, 1000)
  assert.equal(defaults.health.maxHeapUsedPercent, 90)
  assert.equal(defaults.health.maxRss, 0)
  const fromEnv = loadConfig({ env: { METRICS_PORT: '0', WSC_DRAIN_WINDOW: '4s', WSC_MAX_RSS: '512MiB', WSC_MAX_EVENT_LOOP_DELAY: '0' } })
  assert.equal(fromEnv.metrics.port, 0)
  assert.equal(fromEnv.drain.window, 4000)
  assert.equal(fromEnv.health.maxRss, 512 * 1024 * 1024)
  assert.equal(fromEnv.health.maxEventLoopDelay, 0)
})

test('a drain that cannot fit in the shutdown timeout stops start-up, naming the keys', () => {
  assert.throws(() => loadConfig({ env: { WSC_DRAIN_WINDOW: '30s' } }), {
    code: 'WSC_ERR_CONFIG',
    message: /drain\.delay \+ drain\.window \(30000 ms\) leave no time for the close handshakes within drain\.timeout \(25000 ms\)/
  })
  assert.doesNotThrow(() => loadConfig({ env: { WSC_DRAIN_WINDOW: '30s', WSC_SHUTDOWN_TIMEOUT: '40s' } }))
  // The time kept for the last close handshakes is the close timeout every close gives a client.
  assert.throws(() => loadConfig({ env: { WSC_DRAIN_WINDOW: '30s', WSC_SHUTDOWN_TIMEOUT: '40s', WSC_CLOSE_TIMEOUT: '10s' } }), {
    code: 'WSC_ERR_CONFIG',
    message: /expected at least websocket\.close_timeout \(10000 ms\) to spare/
  })
  assert.throws(() => loadConfig({ env: { METRICS_PORT: '70000' } }), { code: 'WSC_ERR_CONFIG', message: /metrics\.port = "70000" \(from METRICS_PORT\)/ })
})
