import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Multimap } from '../../lib/multimap.js'

test('a key holds its lone value as is, a Set from the second value on, and the lone value again when one is left', () => {
  const map = new Multimap<string, object>()
  const a = { name: 'a' }
  const b = { name: 'b' }
  const c = { name: 'c' }
  assert.deepEqual([...map.values('u')], [])
  assert.equal(map.add('u', a), true)
  assert.equal(map.add('u', a), false, 'a value is held once')
  assert.equal(map.raw('u'), a, 'one value: no Set')
  assert.equal(map.add('u', b), true)
  assert.equal(map.add('u', c), true)
  assert.ok(map.raw('u') instanceof Set)
  assert.deepEqual([...map.values('u')], [a, b, c], 'in the order they were added')
  assert.equal(map.delete('u', b), true)
  assert.equal(map.delete('u', b), false)
  assert.equal(map.delete('u', a), true)
  assert.equal(map.raw('u'), c, 'back to the lone value')
  assert.equal(map.delete('u', a), false, 'a value the key does not hold')
  assert.equal(map.delete('u', c), true)
  assert.equal(map.has('u'), false, 'the key goes with its last value')
  assert.equal(map.size, 0)
  assert.equal(map.delete('u', c), false)
})

test('a value that is itself a Set is never taken for a group', () => {
  const map = new Multimap<string, Set<number>>()
  const set = new Set([1, 2])
  map.add('k', set)
  assert.deepEqual([...map.values('k')], [set])
  assert.equal(map.delete('k', set), true)
  assert.equal(map.size, 0)
})
