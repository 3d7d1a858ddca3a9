import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { buildExampleApp } from '../../example/app.js'
import { buildInProcess, capturedLogs, TestClient, within } from '../helper.js'
import { startNodes, uniquePrefix } from '../redis-harness.js'

const UPGRADE = { connection: 'upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' }

/** The HTTP status an upgrade of `url` gets (401, 403… or 101 for a socket the server would open). */
async function upgradeStatus (app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<number> {
  return (await app.inject({ method: 'GET', url, headers: { ...UPGRADE, ...headers } })).statusCode
}

async function exampleApp (t: TestContext, jwtSecret?: string): Promise<FastifyInstance> {
  const app = await buildExampleApp({ jwtSecret, fastify: { logger: false }, wsc: { server: { nodeId: 'hostile' }, metrics: { enabled: false } } })
  t.after(() => app.close())
  await app.ready()
  return app
}

const base64url = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

/** A JWT signed here, byte for byte as given: claims the example must refuse are signed with the real secret. */
function jwt (claims: unknown, secret: string, header: unknown = { alg: 'HS256', typ: 'JWT' }): string {
  const input = `${base64url(header)}.${base64url(claims)}`
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

test('a user id over 256 characters or with a lone surrogate, from authenticate, is a 401 with a warn line, not a 500', { timeout: 30_000 }, async (t) => {
  const { lines, stream } = capturedLogs()
  const { refusal } = await buildInProcess(t, {
    authenticate: (request) => {
      const kind = new URL(request.url, 'http://x').searchParams.get('kind')
      if (kind === 'long') return { userId: 'u'.repeat(300) }
      if (kind === 'surrogate') return { userId: 'caf\ud800' }
      if (kind === 'room') return { userId: 'ok', rooms: ['r'.repeat(300)] }
      return { userId: 'fine' }
    }
  }, { logger: { level: 'warn', stream } })
  for (const kind of ['long', 'surrogate', 'room']) {
    const answer = await refusal(`kind=${kind}`)
    assert.equal(answer.statusCode, 401, `${kind}: ${answer.body}`)
  }
  assert.equal(lines.filter((line) => line.level >= 50).length, 0, 'no error line')
  const warned = lines.filter((line) => line.level === 40 && line.statusCode === 401)
  assert.equal(warned.length, 3, 'one warn line each')
  assert.ok(warned.every((line) => !JSON.stringify(line).includes('u'.repeat(300))), 'the id itself is not logged')
})

test('the example app: a 300-character token (development) or JWT sub is a 401', { timeout: 30_000 }, async (t) => {
  const dev = await exampleApp(t)
  assert.equal(await upgradeStatus(dev, `/ws?token=${'a'.repeat(300)}`), 401)
  assert.equal(await upgradeStatus(dev, '/ws', { authorization: `Bearer ${'b'.repeat(257)}` }), 401)
  const secured = await exampleApp(t, 'hostile-secret')
  const exp = Math.floor(Date.now() / 1000) + 60
  assert.equal(await upgradeStatus(secured, `/ws?token=${jwt({ sub: 'c'.repeat(300), exp }, 'hostile-secret')}`), 401)
})

test('JWTs with malformed claims or a non-canonical signature are a 401 even when signed with the real secret', { timeout: 30_000 }, async (t) => {
  const secret = 'hostile-secret'
  const app = await exampleApp(t, secret)
  const now = Math.floor(Date.now() / 1000)
  const good = jwt({ sub: 'ok', exp: now + 60 }, secret)
  // The control: a well-formed token opens a socket (the upgrade is not refused).
  assert.notEqual(await upgradeStatus(app, `/ws?token=${good}`), 401)
  const [head, body, signature = ''] = good.split('.')
  // The last character of an HS256 signature carries 2 unused bits: 3 other characters decode alike.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const last = alphabet.indexOf(signature.at(-1) ?? 'A')
  const sameBytes = `${signature.slice(0, -1)}${alphabet[(last & ~3) | ((last + 1) & 3)]}`
  assert.deepEqual(Buffer.from(sameBytes, 'base64url'), Buffer.from(signature, 'base64url'))
  const refused: Record<string, string> = {
    'exp as a date string': jwt({ sub: 'ok', exp: new Date(Date.now() - 3600_000).toISOString() }, secret),
    'exp as a numeric string': jwt({ sub: 'ok', exp: String(now - 3600) }, secret),
    'exp null': jwt({ sub: 'ok', exp: null }, secret),
    'nbf as a string': jwt({ sub: 'ok', nbf: new Date(Date.now() + 3600_000).toISOString() }, secret),
    'sub a number': jwt({ sub: 42, exp: now + 60 }, secret),
    'padding appended to the signature': `${good}==`,
    'non-canonical last signature character': `${head}.${body}.${sameBytes}`,
    'a fourth segment': `${good}.x`,
    'alg none': `${base64url({ alg: 'none' })}.${body}.`,
    'alg HS512 with the same secret': (() => {
      const input = `${base64url({ alg: 'HS512', typ: 'JWT' })}.${body}`
      return `${input}.${createHmac('sha512', secret).update(input).digest('base64url')}`
    })()
  }
  for (const [what, token] of Object.entries(refused)) {
    assert.equal(await upgradeStatus(app, `/ws?token=${encodeURIComponent(token)}`), 401, what)
  }
})

test('a room, user or connection id with a lone surrogate is BAD_REQUEST on the wire and WSC_ERR_TARGET in the API', { timeout: 30_000 }, async (t) => {
  const { app, connect } = await buildInProcess(t, { authorizePublish: () => true })
  const client = await connect('token=alice')
  // Escaped in JSON, so the frame itself is valid UTF-8; the name it carries is not well-formed UTF-16.
  client.send('{"type":"join","room":"caf\\ud800","id":"j"}')
  assert.deepEqual([(await client.next('error')).code, client.frames.some((frame) => frame.type === 'joined')], ['BAD_REQUEST', false])
  client.send('{"type":"publish","to":{"user":"\\udc00bob"},"data":1,"id":"p"}')
  assert.equal((await client.next('error')).code, 'BAD_REQUEST')
  client.send('{"type":"publish","to":{"room":"caf\\ud800"},"data":1,"id":"q"}')
  assert.equal((await client.next('error')).code, 'BAD_REQUEST')
  await assert.rejects(app.wsc.sendToRoom('caf\ud800', 1), { code: 'WSC_ERR_TARGET' })
  await assert.rejects(app.wsc.sendToUser('\udc00bob', 1), { code: 'WSC_ERR_TARGET' })
  await assert.rejects(app.wsc.sendToConnection('test-node~1-\ud800', 1), { code: 'WSC_ERR_TARGET' })
  await assert.rejects(app.wsc.joinRoom('alice', 'caf\ud800'), { code: 'WSC_ERR_TARGET' })
})

test('with Redis, joining and leaving "caf\\ud800" does not unsubscribe the members of "caf\\ufffd"', { timeout: 30_000 }, async (t) => {
  const [node] = await startNodes(t, 1, { prefix: uniquePrefix() })
  assert.ok(node)
  const bob = await TestClient.connect(node.url('token=bob'))
  bob.send({ type: 'join', room: 'caf\ufffd' })
  await bob.next('joined')
  const alice = await TestClient.connect(node.url('token=alice'))
  alice.send({ type: 'join', room: 'caf\ud800', id: 'j' })
  const answer = await within(Promise.race([alice.next('joined'), alice.next('error')]), 5000, 'an answer to the join')
  if (answer.type === 'joined') {
    alice.send({ type: 'leave', room: 'caf\ud800' })
    await alice.next('left')
  }
  await node.app.wsc.sendToRoom('caf\ufffd', 'still here')
  assert.equal((await bob.next('message')).data, 'still here')
  assert.equal(answer.type, 'error', 'the join was refused')
})
