import { test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { WscClient, WscFrameError, type WscMessage, type WscStatus } from 'fastify-wsc/client'
import { buildExampleApp } from '../../example/app.js'
import { freePorts } from '../../scripts/local-cluster.js'
import { build, directMessages, within } from '../helper.js'

function recorder (): { messages: WscMessage[], statuses: string[], until: (predicate: () => boolean, what: string) => Promise<void>, onMessage: (m: WscMessage) => void, onStatus: (s: WscStatus, d?: { code?: number }) => void } {
  const messages: WscMessage[] = []
  const statuses: string[] = []
  let wake: () => void = () => {}
  const changed = (): void => wake()
  return {
    messages,
    statuses,
    onMessage: (m) => { messages.push(m); changed() },
    onStatus: (s, d) => { statuses.push(d?.code === undefined ? s : `${s}:${d.code}`); changed() },
    until: (predicate, what) => within((async () => {
      while (!predicate()) await new Promise<void>((resolve) => { wake = resolve })
    })(), 10_000, what)
  }
}

test('the browser client authenticates by subprotocol, publishes with acks and turns refusals into errors', async (t) => {
  const { url } = await build(t, {
    authorizePublish: directMessages,
    authenticate: (request) => {
      const entry = String(request.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim()).find((s) => s.startsWith('wsc.bearer.'))
      return entry === undefined ? null : { userId: entry.slice('wsc.bearer.'.length) }
    }
  })
  const alice = recorder()
  const bob = recorder()
  const a = new WscClient({ url: url(), token: 'alice', WebSocket, onMessage: alice.onMessage, onStatus: alice.onStatus })
  const b = new WscClient({ url: url(), token: 'bob', WebSocket, onMessage: bob.onMessage, onStatus: bob.onStatus })
  t.after(() => { a.close(); b.close() })
  a.connect()
  b.connect()
  await alice.until(() => alice.statuses.includes('open'), 'alice open')
  await bob.until(() => bob.statuses.includes('open'), 'bob open')
  await a.publish({ user: 'bob' }, { text: 'hi' })
  await bob.until(() => bob.messages.length === 1, 'bob message')
  assert.deepEqual(bob.messages[0]?.data, { text: 'hi' })
  assert.equal(b.lastSeq, 1)
  await assert.rejects(a.publish({ room: 'not-joined' }, 1), (err: WscFrameError) => err.code === 'FORBIDDEN')
  await a.join('lobby')
  await a.publish({ room: 'lobby' }, 'in the room')
  await alice.until(() => alice.messages.some((m) => m.data === 'in the room'), 'room message')
})

test('after a disconnect the client resumes with since: every message once, rooms rejoined', async (t) => {
  const { app, url } = await build(t)
  const carol = recorder()
  const client = new WscClient({ url: url('token=carol'), WebSocket, reconnectDelayMs: 20, onMessage: carol.onMessage, onStatus: carol.onStatus })
  t.after(() => client.close())
  client.connect()
  await carol.until(() => carol.statuses.includes('open'), 'open')
  await client.join('ops')
  for (let i = 1; i <= 5; i++) await app.wsc.sendToUser('carol', i)
  await carol.until(() => carol.messages.length === 5, 'first five')
  const [entry] = await app.wsc.presence('carol')
  assert.ok(entry)
  await app.wsc.disconnect(entry.connectionId)
  await carol.until(() => carol.statuses.includes('reconnecting:1000'), 'reconnecting')
  for (let i = 6; i <= 10; i++) await app.wsc.sendToUser('carol', i)
  await carol.until(() => carol.statuses.filter((s) => s === 'open').length === 2, 'reopened')
  await carol.until(() => carol.messages.length === 10, 'all ten')
  assert.deepEqual(carol.messages.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
  await within((async () => { while (!(await app.wsc.presence('carol')).length) await new Promise((resolve) => setImmediate(resolve)) })(), 5000, 'presence')
  await app.wsc.sendToRoom('ops', 'rejoined')
  await carol.until(() => carol.messages.some((m) => m.data === 'rejoined'), 'room message after reconnect')
})

test('a kicked client (1008) stays closed', async (t) => {
  const { app, url } = await build(t)
  const dan = recorder()
  const client = new WscClient({ url: url('token=dan'), WebSocket, reconnectDelayMs: 20, onMessage: dan.onMessage, onStatus: dan.onStatus })
  t.after(() => client.close())
  client.connect()
  await dan.until(() => dan.statuses.includes('open'), 'open')
  await app.wsc.kick('dan')
  await dan.until(() => dan.statuses.includes('closed:1008'), 'closed')
  assert.equal(dan.statuses.some((s) => s.startsWith('reconnecting')), false)
})

// Before the client listened to 'error', each of these connects crashed the process with
// "Unhandled 'error' event" (ECONNREFUSED, ENOTFOUND, "Unexpected server response: 401/503").
test('failed connects end in the client\'s status, never an unhandled error: refused, DNS, 401, 503', async (t) => {
  const { url } = await build(t)
  const draining = await build(t)
  await draining.app.wsc.drain({ windowMs: 0, delayMs: 0 })
  const [closedPort] = await freePorts(1)
  const cases = [
    { url: `ws://127.0.0.1:${closedPort}/ws?token=a`, expect: 'reconnecting:refused' },
    { url: 'ws://wsc-test.invalid/ws?token=a', expect: 'reconnecting:dns' },
    { url: url(), expect: 'closed:http:401' },
    { url: draining.url('token=a'), expect: 'reconnecting:http:503' }
  ]
  for (const { url, expect } of cases) {
    const seen = recorder()
    const client = new WscClient({
      url,
      WebSocket,
      reconnectDelayMs: 20,
      onStatus: (status, detail) => {
        const failure = detail?.failure
        seen.onStatus(failure === undefined ? status : [status, failure.kind, failure.status].filter((x) => x !== undefined).join(':') as WscStatus)
      }
    })
    t.after(() => client.close())
    client.connect()
    await seen.until(() => seen.statuses.includes(expect), expect)
    client.close()
  }
})

test('the example app serves the demo page and the browser client', async (t) => {
  const app = await buildExampleApp({ fastify: { logger: false }, wsc: { server: { nodeId: 'page' } } })
  t.after(() => app.close())
  const page = await app.inject('/')
  assert.equal(page.statusCode, 200)
  assert.match(page.headers['content-type'] as string, /text\/html/)
  assert.match(page.body, /import \{ WscClient \} from '\/client\.js'/)
  const script = await app.inject('/client.js')
  assert.equal(script.statusCode, 200)
  assert.match(script.headers['content-type'] as string, /javascript/)
  assert.match(script.body, /export \{[^}]*\bWscClient\b/)
})
