import { test } from 'node:test'
import assert from 'node:assert/strict'
import { planDrain } from '../../lib/node/drain.js'

test('closes are spread evenly over the window, first at once, last one slot before its end', () => {
  const plan = planDrain(4, 1000, 0)
  assert.deepEqual(plan.map((step) => step.atMs), [0, 250, 500, 750])
  assert.deepEqual(planDrain(0, 1000, 0), [])
  assert.deepEqual(planDrain(3, 0, 0).map((step) => step.atMs), [0, 0, 0])
})

test('afterMs is drawn from 0 to the jitter bound, inclusive', () => {
  const draws = [0, 0.5, 0.999999]
  const plan = planDrain(3, 0, 2000, () => draws.shift() ?? 0)
  assert.deepEqual(plan.map((step) => step.afterMs), [0, 1000, 2000])
  for (const step of planDrain(500, 1000, 300)) assert.ok(step.afterMs >= 0 && step.afterMs <= 300)
})
