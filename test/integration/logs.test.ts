import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import wsc from '../../plugins/index.js'
import { directMessages, TestClient } from '../helper.js'

test('logs: opened/closed at debug, refusals at warn with their status, never a token or a payload', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const raw: string[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      raw.push(chunk.toString())
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
      done()
    }
  })
  const app = Fastify({ logger: { level: 'debug', stream } })
  await app.register(wsc, {
    server: { nodeId: 'logs' },
    metrics: { port: 0, host: '127.0.0.1' },
    authorizePublish: directMessages,
    authenticate: (request) => {
      const token = new URL(request.url, 'http://x').searchParams.get('token')
      if (token === 'tok-secret-broken') throw new Error('the user database is down')
      return token === 'tok-secret-alice' ? { userId: 'alice' } : null
    }
  })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const url = (token: string): string => `ws://127.0.0.1:${port}/ws?token=${token}`

  assert.equal((await TestClient.refusal(url('tok-secret-wrong'))).statusCode, 401)
  assert.equal((await TestClient.refusal(url('tok-secret-broken'))).statusCode, 500)
  const alice = await TestClient.connect(url('tok-secret-alice'))
  alice.send({ type: 'publish', id: 'c-1', to: { user: 'alice' }, data: { text: 'PAYLOAD-MARKER' } })
  await alice.next('message')
  alice.send('{"type":"publish","to":{"user":"alice"},"data":"PAYLOAD-MARKER-2"')
  await alice.next('error')
  await alice.close()
  await app.close()

  const all = raw.join('')
  assert.doesNotMatch(all, /tok-secret/, 'no token in any log line')
  assert.doesNotMatch(all, /PAYLOAD-MARKER/, 'no payload in any log line')
  assert.match(all, /token=\[REDACTED\]/, 'the failed upgrade was logged, with its URL redacted')
  const find = (msg: string): Record<string, unknown> | undefined => lines.find((line) => line.msg === msg)
  assert.equal(find('connection opened')?.level, 20)
  assert.equal(find('connection closed')?.level, 20)
  assert.equal(find('connection closed')?.userId, 'alice')
  assert.deepEqual([find('upgrade refused: no credentials')?.level, find('upgrade refused: no credentials')?.statusCode], [40, 401])
})
