import { test } from 'node:test'
import assert from 'node:assert/strict'
import { evaluateReadiness, type NodeHealth, type PressureSample } from '../../lib/readiness.js'

const healthy: NodeHealth = {
  started: true,
  draining: false,
  connections: 3,
  rooms: 0,
  router: { up: true, probeLatencyMs: 1.234, probeAt: 10_000, received: 0, detail: 'redis standalone' },
  store: undefined
}
const calm: PressureSample = {
  underPressure: false,
  eventLoopDelayMs: 2,
  heapUsedBytes: 50 * 1024 * 1024,
  rssBytes: 120 * 1024 * 1024,
  limits: { eventLoopDelayMs: 1000, heapUsedBytes: 1024 * 1024 * 1024, rssBytes: 0 }
}
const at = { now: 12_000, maxProbeAgeMs: 15_000 }

const states = (readiness: ReturnType<typeof evaluateReadiness>): Record<string, string> =>
  Object.fromEntries(readiness.checks.map((check) => [check.name, check.state]))

test('ready when started, not draining, router up with a fresh probe, and no pressure; each check has its latency', () => {
  const readiness = evaluateReadiness(healthy, calm, at)
  assert.equal(readiness.ready, true)
  assert.deepEqual(states(readiness), { node: 'pass', router: 'pass', pressure: 'pass' })
  assert.equal(readiness.checks.find((c) => c.name === 'router')?.latencyMs, 1.23)
  assert.equal(readiness.checks.find((c) => c.name === 'pressure')?.latencyMs, 2)
})

test('not ready while starting or draining', () => {
  assert.deepEqual(states(evaluateReadiness({ ...healthy, started: false }, calm, at)), { node: 'fail', router: 'pass', pressure: 'pass' })
  const draining = evaluateReadiness({ ...healthy, draining: true }, calm, at)
  assert.equal(draining.ready, false)
  assert.equal(draining.checks[0]?.detail, 'draining')
})

test('not ready when the router is down or its Pub/Sub probe has not come back for longer than the limit', () => {
  assert.equal(evaluateReadiness({ ...healthy, router: { ...healthy.router, up: false, detail: 'redis: connection refused' } }, calm, at).ready, false)
  const stale = evaluateReadiness({ ...healthy, router: { ...healthy.router, probeAt: 12_000 - 20_000 } }, calm, at)
  assert.equal(stale.ready, false)
  assert.match(stale.checks.find((c) => c.name === 'router')?.detail ?? '', /last Pub\/Sub probe came back 20 s ago/)
  const noProbe = evaluateReadiness({ ...healthy, router: { up: true, probeLatencyMs: null, probeAt: null, received: 0, detail: 'in-memory' } }, calm, at)
  assert.equal(noProbe.ready, true, 'a router without a probe is judged by up alone')
})

test('a store is checked only when it reports its status', () => {
  const down = evaluateReadiness({ ...healthy, store: { up: false, detail: 'mysql: ECONNREFUSED' } }, calm, at)
  assert.deepEqual(states(down), { node: 'pass', router: 'pass', store: 'fail', pressure: 'pass' })
  const up = evaluateReadiness({ ...healthy, store: { up: true, detail: 'mysql', latencyMs: 3 } }, calm, at)
  assert.equal(up.ready, true)
  assert.equal(up.checks.find((c) => c.name === 'store')?.latencyMs, 3)
})

test('under pressure names the limit that was passed', () => {
  const loaded = evaluateReadiness(healthy, { ...calm, underPressure: true, eventLoopDelayMs: 1500 }, at)
  assert.equal(loaded.ready, false)
  assert.match(loaded.checks.find((c) => c.name === 'pressure')?.detail ?? '', /^under pressure \(event-loop delay over 1000 ms\)/)
})

test('a loop blocked through a whole sample is said so, not as "Infinity ms"', () => {
  const blocked = evaluateReadiness(healthy, { ...calm, underPressure: true, eventLoopDelayMs: Infinity }, at)
  const detail = blocked.checks.find((c) => c.name === 'pressure')?.detail ?? ''
  assert.equal(blocked.ready, false)
  assert.match(detail, /event loop blocked for a whole sample interval/)
  assert.doesNotMatch(detail, /Infinity/)
})
