import { test } from 'node:test'
import assert from 'node:assert/strict'
import { buildInProcess, capturedLogs } from '../helper.js'
import { exampleServer, requireBuild } from '../example-node.js'
import { startServer } from '../server-process.js'

// Spellings of the `token` query parameter that authenticate as `?token=` does (URLSearchParams decodes them).
const SPELLINGS = ['%74oken', '%74%6F%6B%65%6E', 't%6fken', 'TOKEN']

test('the example server never logs a token, however its query parameter is spelled', { timeout: 30_000 }, async (t) => {
  requireBuild()
  const server = await startServer(t, [exampleServer], { LOG_LEVEL: 'info' })
  const paths = SPELLINGS.flatMap((name, i) => [`/?${name}=SECRET-page-${i}`, `/nope?a=1&${name}=SECRET-404-${i}&b=2`])
  for (const path of paths) await (await fetch(`${server.baseUrl}${path}`)).arrayBuffer()
  const last = SPELLINGS.at(-1) ?? ''
  await server.waitForLog((line) => typeof line.msg === 'string' && line.msg.startsWith(`Route GET:/nope?a=1&${last}=`), 10_000, 'the last 404 line')
  const all = server.logs.map((line) => JSON.stringify(line)).join('\n')
  assert.doesNotMatch(all, /SECRET/, 'no token in any log line')
  for (const name of SPELLINGS) {
    assert.ok(all.includes(`/?${name}=[REDACTED]`), `the page request with ${name} is logged, redacted`)
    assert.ok(all.includes(`Route GET:/nope?a=1&${name}=[REDACTED]&b=2 not found`), `the 404 with ${name} is logged, redacted`)
  }
})

test('a failed upgrade of /ws logs its URL with a percent-encoded token redacted', { timeout: 30_000 }, async (t) => {
  const { lines, stream } = capturedLogs()
  const { refusal } = await buildInProcess(t, {
    authenticate: (request) => {
      if (new URL(request.url, 'http://x').searchParams.get('token') === 'tok-secret-broken') throw new Error('the user database is down')
      return null
    }
  }, { logger: { level: 'info', stream } })
  for (const name of SPELLINGS) assert.equal((await refusal(`${name}=tok-secret-broken`)).statusCode, name === 'TOKEN' ? 401 : 500)
  const all = lines.map((line) => JSON.stringify(line)).join('\n')
  assert.doesNotMatch(all, /tok-secret/)
  assert.match(all, /%74oken=\[REDACTED\]/)
})
