import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import Fastify from 'fastify'
import wsc, { CloseCode, ErrorCode, errors } from 'fastify-wsc'
import { TestClient } from '../helper.js'

test('the built entry point is what `import wsc from "fastify-wsc"` loads, with its types', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { exports: Record<string, { types: string, import: string }> }
  const entry = pkg.exports['.']
  assert.ok(entry)
  const resolved = import.meta.resolve('fastify-wsc')
  assert.match(resolved, /\/dist\/plugins\/index\.js$/, 'resolves to the build, not the sources')
  assert.ok(existsSync(new URL(entry.types, new URL('../../', import.meta.url))), 'declarations are emitted')
  assert.equal(CloseCode.TRY_AGAIN_LATER, 1013)
  assert.equal(ErrorCode.RATE_LIMITED, 'RATE_LIMITED')
  assert.equal(new errors.ForbiddenError().statusCode, 403)

  const app = Fastify()
  await app.register(wsc, { server: { nodeId: 'pkg' }, authenticate: (request) => ({ userId: String((request.query as { token?: string }).token) }) })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const client = await TestClient.connect(`ws://127.0.0.1:${port}/ws?token=alice`)
  await app.wsc.sendToUser('alice', 'from the built package')
  assert.equal((await client.next('message')).data, 'from the built package')
})
