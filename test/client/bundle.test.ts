import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { createRequire } from 'node:module'

// The budget the README states for the published browser bundle (dist/client/wsc-client.js).
const stated = /its budget is \*\*(\d+) KiB gzipped\*\* \((\d+) KiB raw\)/.exec(readFileSync(new URL('../../README.md', import.meta.url), 'utf8'))
assert.ok(stated !== null, 'the README states the bundle budget')
const BUDGET_GZIP_BYTES = Number(stated[1]) * 1024
const BUDGET_RAW_BYTES = Number(stated[2]) * 1024

const path = createRequire(import.meta.url).resolve('fastify-wsc/client')
const bundle = readFileSync(path, 'utf8')

test('fastify-wsc/client is one self-contained ES module with no server code', () => {
  assert.match(path, /dist\/client\/wsc-client\.js$/)
  assert.doesNotMatch(bundle, /^\s*import\s/m, 'no import statements: a browser loads it as is')
  assert.doesNotMatch(bundle, /\brequire\(|\bimport\(/, 'no require() or dynamic import')
  for (const server of [/["']node:/, /["']fastify["'/]/, /ioredis/, /mysql/, /process\.env/, /\bBuffer\b/, /\bWscNode\b/]) {
    assert.doesNotMatch(bundle, server, 'no server code in the browser bundle')
  }
  assert.match(bundle, /export \{[^}]*\bWscClient\b[^}]*\}/)
})

test(`the browser bundle stays within its budget: ${BUDGET_GZIP_BYTES} bytes gzipped, ${BUDGET_RAW_BYTES} raw`, () => {
  const gzipped = gzipSync(bundle, { level: 9 }).length
  assert.ok(gzipped <= BUDGET_GZIP_BYTES, `${gzipped} bytes gzipped`)
  assert.ok(Buffer.byteLength(bundle) <= BUDGET_RAW_BYTES, `${Buffer.byteLength(bundle)} bytes raw`)
})
