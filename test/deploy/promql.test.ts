import { test } from 'node:test'
import assert from 'node:assert/strict'
import { metricNames, parse, SeriesStore, type Element } from './promql.js'

// The evaluator the alert tests rely on, against results worked out by hand from Prometheus's rules.

function store (): SeriesStore {
  const s = new SeriesStore()
  for (let t = 0; t <= 60; t += 15) {
    s.add({ __name__: 'up', pod: 'a', ns: 'x' }, t, 1)
    s.add({ __name__: 'up', pod: 'b', ns: 'x' }, t, t < 45 ? 1 : 0)
    s.add({ __name__: 'requests_total', pod: 'a', ns: 'x' }, t, t === 45 ? 2 : t * 2) // a reset at 45 s
    s.add({ __name__: 'limit', pod: 'a', ns: 'x' }, t, 100)
    for (const [le, count] of [['0.1', 2], ['1', 8], ['+Inf', 10]] as const) s.add({ __name__: 'lat_bucket', le, pod: 'a' }, t, count * t)
  }
  return s
}

const values = (result: Element[] | number): Array<[Record<string, string>, number]> => {
  assert.ok(Array.isArray(result))
  return result.map((e) => [e.labels, e.value])
}

test('selectors, aggregations and filtering comparisons', () => {
  const s = store()
  assert.deepEqual(values(s.evaluate('up{pod=~"a|b"}', 60)).map(([l, v]) => [l.pod, v]), [['a', 1], ['b', 0]])
  assert.deepEqual(values(s.evaluate('max by (ns) (up) == 0', 60)), [])
  assert.deepEqual(values(s.evaluate('min by (ns) (up) == 0', 60)), [[{ ns: 'x' }, 0]])
  assert.deepEqual(values(s.evaluate('sum(up)', 30)), [[{}, 2]])
  assert.deepEqual(values(s.evaluate('up{pod!="a"} > 0', 60)), [])
  assert.equal(s.evaluate('4 * 3600', 0), 14400)
  // A series older than the 5-minute lookback, or marked stale, is gone.
  assert.deepEqual(values(s.evaluate('up', 400)), [])
  s.add({ __name__: 'up', pod: 'a', ns: 'x' }, 75, null)
  assert.deepEqual(values(s.evaluate('up', 75)).map(([l]) => l.pod), ['b'])
})

test('vector matching: on() keeps the matching labels; many-to-one needs group_left', () => {
  const s = store()
  assert.deepEqual(values(s.evaluate('sum by (ns) (up) < on (ns) count by (ns) (limit) + 1', 60)), [[{ ns: 'x' }, 1]])
  s.add({ __name__: 'up', pod: 'a', ns: 'x', id: 'second' }, 60, 1)
  assert.throws(() => s.evaluate('up{pod="a"} > on (pod) limit', 60), /group_left/)
  assert.equal(values(s.evaluate('up{pod="a"} < on (pod) group_left limit', 60)).length, 2)
})

test('increase and rate count a reset from zero; predict_linear extrapolates; histogram_quantile interpolates', () => {
  const s = store()
  // 0, 30, 60, 2 (reset), 120: 30 + 30 + 2 + 118 = 180 over the window.
  assert.deepEqual(values(s.evaluate('increase(requests_total[1m])', 60)), [[{ pod: 'a', ns: 'x' }, 150]])
  assert.deepEqual(values(s.evaluate('increase(requests_total[2m])', 60)), [[{ pod: 'a', ns: 'x' }, 180]])
  assert.deepEqual(values(s.evaluate('rate(requests_total[2m])', 60)), [[{ pod: 'a', ns: 'x' }, 1.5]])
  assert.deepEqual(values(s.evaluate('predict_linear(limit[1m], 600)', 60)), [[{ pod: 'a', ns: 'x' }, 100]])
  const rising = new SeriesStore()
  for (let t = 0; t <= 60; t += 15) rising.add({ __name__: 'mem' }, t, 10 + t)
  assert.deepEqual(values(rising.evaluate('predict_linear(mem[2m], 100)', 60)), [[{}, 170]])
  // Of 10 requests in the window, 2 at most 0.1 s, 8 at most 1 s: the median is in the second bucket.
  const [[, median]] = values(s.evaluate('histogram_quantile(0.5, sum by (le) (rate(lat_bucket[1m])))', 60)) as [[Record<string, string>, number]]
  assert.ok(Math.abs(median - (0.1 + 0.9 * (5 - 2) / (8 - 2))) < 1e-9, String(median))
})

test('the parser rejects what it does not implement and names the metrics an expression uses', () => {
  assert.deepEqual(metricNames(parse('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y"}[5m]))) / on () group_left b')), ['a_bucket', 'b'])
  assert.throws(() => parse('up offset 5m'), /PromQL/)
  assert.throws(() => parse('sum(up'), /PromQL/)
  assert.throws(() => store().evaluate('absent(up)', 60), /not implemented/)
})
