import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { fullJitterDelay } from 'fastify-wsc/client'
import type { FastifyInstance } from 'fastify'
import { freePorts } from '../../scripts/local-cluster.js'
import { unexpectedConsoleErrors } from '../browser/chromium.js'
import { build, waitFor } from '../helper.js'
import { chromiumRuntime, details, messages, nodeRuntime, statuses, type Runtime } from './runtimes.js'
import { scriptedServer, sendFrame, silentPort, tcpProxy, userMessage, welcome } from './peers.js'

// Every way a connection can fail ends in the client's own status events, never in an exception: the
// same scenarios run on Node (the `ws` package) and in Chromium (the browser's WebSocket). Before the
// client listened to 'error', a refused connect, a DNS failure or a refused upgrade took a Node process
// down with "Unhandled 'error' event" (test/integration/client.test.ts shows it with the original API).

const chromium = await chromiumRuntime()
const runtimes: Runtime[] = [nodeRuntime(), chromium]
after(async () => { for (const runtime of runtimes) await runtime.close() })

/** Reads the `wsc.bearer.<token>` subprotocol: `nobody` is refused (401), `banned` forbidden (403). */
const bySubprotocol = {
  authenticate: (request: { headers: Record<string, string | string[] | undefined> }) => {
    const entry = String(request.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim()).find((s) => s.startsWith('wsc.bearer.'))
    const token = entry?.slice('wsc.bearer.'.length)
    if (token === undefined || token === 'nobody') return null
    if (token === 'banned') throw Object.assign(new Error('banned user'), { statusCode: 403 })
    return { userId: token }
  }
}

async function waitForPresence (app: FastifyInstance, user: string): Promise<void> {
  await waitFor(async () => (await app.wsc.presence(user)).length > 0 || undefined, 5000, `${user} present`)
}

test('full jitter: each delay is uniform in [0, min(max, base * 2^attempt))', () => {
  assert.equal(fullJitterDelay(0, 500, 15_000, () => 0), 0)
  assert.equal(fullJitterDelay(0, 500, 15_000, () => 0.999), 499)
  assert.equal(fullJitterDelay(3, 500, 15_000, () => 0.5), 2000)
  assert.equal(fullJitterDelay(10, 500, 15_000, () => 0.5), 7500, 'capped at max')
  assert.equal(fullJitterDelay(5000, 500, 15_000, () => 0.5), 7500, 'no overflow for a long outage')
})

for (const runtime of runtimes) {
  const inBrowser = runtime.name === 'chromium'
  const name = (title: string): string => `${runtime.name}: ${title}`

  test(name('a refused connect retries with growing full-jitter delays'), async (t) => {
    const [port] = await freePorts(1)
    const client = await runtime.start({ url: `ws://127.0.0.1:${port}/ws`, token: 'u1', reconnectDelayMs: 20, maxReconnectDelayMs: 60 })
    t.after(() => client.call('close'))
    await client.until((e) => details(e, 'reconnecting').length >= 4, 'four retries')
    for (const [i, retry] of details(client.events, 'reconnecting').slice(0, 4).entries()) {
      // A browser is not told why a WebSocket failed to connect.
      assert.equal(retry.failure?.kind, inBrowser ? 'network' : 'refused')
      assert.equal(retry.failure?.final, false)
      assert.equal(retry.attempt, i + 1)
      assert.ok(retry.delayMs !== undefined && retry.delayMs >= 0 && retry.delayMs < Math.min(60, 20 * 2 ** i), `delay ${String(retry.delayMs)} of retry ${i + 1}`)
    }
    assert.equal((await client.call('close')).ok, true)
    assert.equal(await client.get('status'), 'closed')
  })

  test(name('a host name that does not resolve is a retried failure'), async (t) => {
    const client = await runtime.start({ url: 'ws://wsc-test.invalid/ws', token: 'u1', reconnectDelayMs: 20 })
    t.after(() => client.call('close'))
    await client.until((e) => details(e, 'reconnecting').length >= 1, 'a retry')
    const [retry] = details(client.events, 'reconnecting')
    assert.equal(retry?.failure?.kind, inBrowser ? 'network' : 'dns')
    if (!inBrowser) assert.match(retry?.failure?.message ?? '', /cannot resolve wsc-test\.invalid/)
  })

  test(name('an upgrade that never answers is abandoned after openTimeoutMs'), async (t) => {
    const port = await silentPort(t)
    const client = await runtime.start({ url: `ws://127.0.0.1:${port}/ws`, token: 'u1', openTimeoutMs: 200, reconnectDelayMs: 20 })
    t.after(() => client.call('close'))
    await client.until((e) => details(e, 'reconnecting').length >= 2, 'two timeouts')
    for (const retry of details(client.events, 'reconnecting')) {
      assert.equal(retry.failure?.kind, 'timeout')
      assert.match(retry.failure?.message ?? '', /no welcome from 127\.0\.0\.1:\d+ within 200 ms/)
    }
  })

  test(name('401 and 403 stop reconnecting and say why; a browser only sees a failed connect'), async (t) => {
    const { url } = await build(t, bySubprotocol)
    for (const [token, status, why] of [['nobody', 401, /unauthorized/], ['banned', 403, /forbidden/]] as const) {
      const client = await runtime.start({ url: url(), token, reconnectDelayMs: 20 })
      t.after(() => client.call('close'))
      if (inBrowser) {
        await client.until((e) => details(e, 'reconnecting').length >= 1, `${token}: a retry`)
        assert.equal(details(client.events, 'reconnecting')[0]?.failure?.kind, 'network')
        continue
      }
      await client.until((e) => statuses(e).includes('closed:http'), `${token}: closed`)
      const [closed] = details(client.events, 'closed')
      assert.equal(closed?.failure?.status, status)
      assert.equal(closed?.failure?.final, true)
      assert.match(closed?.failure?.message ?? '', why)
      assert.deepEqual(statuses(client.events), ['connecting', 'closed:http'], 'no retry after a final refusal')
      assert.equal((await client.get('failure') as { status: number }).status, status)
    }
  })

  test(name('a token that cannot be a subprotocol stops at once and says so'), async (t) => {
    const { url } = await build(t, bySubprotocol)
    const client = await runtime.start({ url: url(), token: 'not a token' })
    t.after(() => client.call('close'))
    await client.until((e) => statuses(e).includes('closed:invalid'), 'closed')
    assert.deepEqual(statuses(client.events), ['connecting', 'closed:invalid'])
    assert.match(details(client.events, 'closed')[0]?.failure?.message ?? '', /^cannot open a WebSocket: /)
  })

  test(name('a drain: reconnect frame and 1012, then 503 with Retry-After from the draining node'), async (t) => {
    const { app, url } = await build(t, bySubprotocol)
    const client = await runtime.start({ url: url(), token: 'dora', reconnectDelayMs: 20 })
    t.after(() => client.call('close'))
    await client.until((e) => statuses(e).includes('open'), 'open')
    await waitForPresence(app, 'dora')
    const drained = app.wsc.drain({ windowMs: 0, delayMs: 0, reconnectJitterMs: 30 })
    await client.until((e) => details(e, 'reconnecting').length >= 2, 'the 1012 and the refused reconnect')
    await drained
    const [afterDrain, refused] = details(client.events, 'reconnecting')
    assert.equal(afterDrain?.code, 1012)
    assert.equal(afterDrain?.failure?.kind, 'closed')
    assert.ok((afterDrain?.delayMs ?? Infinity) <= 30, `the reconnect frame's afterMs (≤ 30), not backoff: ${String(afterDrain?.delayMs)}`)
    if (inBrowser) {
      assert.equal(refused?.failure?.kind, 'network')
    } else {
      assert.equal(refused?.failure?.status, 503)
      assert.equal(refused?.failure?.retryAfterMs, 5000)
      assert.ok((refused?.delayMs ?? 0) >= 5000, 'Retry-After is honoured')
    }
  })

  test(name('a connection dropped mid-stream resumes with since: every message once'), async (t) => {
    const { app, url } = await build(t, bySubprotocol)
    const proxy = await tcpProxy(t, Number(new URL(url()).port))
    const client = await runtime.start({ url: `ws://127.0.0.1:${proxy.port}/ws`, token: 'carol', reconnectDelayMs: 20 })
    t.after(() => client.call('close'))
    await client.until((e) => statuses(e).includes('open'), 'open')
    for (let i = 1; i <= 3; i++) await app.wsc.sendToUser('carol', i)
    await client.until((e) => messages(e).length === 3, 'three messages')
    proxy.cut()
    const sends = [4, 5, 6].map(async (i) => app.wsc.sendToUser('carol', i))
    await client.until((e) => statuses(e).includes('reconnecting:network'), 'the drop')
    await Promise.all(sends)
    await client.until((e) => statuses(e).filter((s) => s === 'open').length === 2 && messages(e).length >= 6, 'reopened with all six')
    assert.deepEqual(messages(client.events).map((m) => m.seq), [1, 2, 3, 4, 5, 6])
    assert.deepEqual(messages(client.events).map((m) => m.data), [1, 2, 3, 4, 5, 6])
    assert.equal(await client.get('lastSeq'), 6)
    assert.equal(await client.get('epoch'), (await app.wscStore.head('carol')).epoch, 'the epoch of the welcome')
    assert.equal(proxy.connections(), 2)
  })

  test(name('1013 (slow consumer) reconnects with since'), async (t) => {
    const server = await scriptedServer(t, (socket, n) => {
      if (n === 0) {
        sendFrame(socket, welcome({ seq: 2 }))
        sendFrame(socket, userMessage(1))
        sendFrame(socket, userMessage(2))
        socket.close(1013, 'slow consumer')
      } else {
        sendFrame(socket, welcome({ seq: 3 }))
        sendFrame(socket, userMessage(2))
        sendFrame(socket, userMessage(3))
      }
    })
    const client = await runtime.start({ url: server.url, token: 'u1', reconnectDelayMs: 20 })
    t.after(() => client.call('close'))
    await client.until((e) => messages(e).length === 3, 'three messages')
    assert.equal(details(client.events, 'reconnecting')[0]?.code, 1013)
    assert.equal(server.requests[1]?.searchParams.get('since'), '2')
    assert.deepEqual(messages(client.events).map((m) => m.seq), [1, 2, 3], 'the replayed seq 2 is dropped')
  })

  test(name('a reconnect frame\'s afterMs is the delay before the next attempt'), async (t) => {
    const server = await scriptedServer(t, (socket, n) => {
      sendFrame(socket, welcome({ seq: 1 }))
      if (n > 0) return
      sendFrame(socket, userMessage(1))
      sendFrame(socket, { type: 'reconnect', afterMs: 321 })
      socket.close(1012, 'draining')
    })
    const client = await runtime.start({ url: server.url, token: 'u1', reconnectDelayMs: 10_000 })
    t.after(() => client.call('close'))
    await client.until((e) => statuses(e).filter((s) => s === 'open').length === 2, 'reopened')
    const [retry] = details(client.events, 'reconnecting')
    assert.equal(retry?.delayMs, 321)
    assert.equal(retry?.code, 1012)
    assert.equal(server.requests[1]?.searchParams.get('since'), '1')
  })

  test(name('a server that goes silent is given up after two heartbeats'), async (t) => {
    const server = await scriptedServer(t, (socket) => sendFrame(socket, welcome({ heartbeatMs: 100 })))
    const client = await runtime.start({ url: server.url, token: 'u1', reconnectDelayMs: 20 })
    t.after(() => client.call('close'))
    await client.until((e) => statuses(e).includes('reconnecting:timeout'), 'a timeout')
    assert.match(details(client.events, 'reconnecting')[0]?.failure?.message ?? '', /no frame from the server for 200 ms/)
  })

  test(name('a new epoch resets lastSeq, reports it, and keeps the new stream\'s messages'), async (t) => {
    const server = await scriptedServer(t, (socket, n) => {
      if (n === 0) {
        sendFrame(socket, welcome({ seq: 3, epoch: 'e1' }))
        for (let seq = 1; seq <= 3; seq++) sendFrame(socket, userMessage(seq))
      } else if (n === 1) {
        // The server lost the user's history: a new epoch whose seqs start again.
        sendFrame(socket, welcome({ seq: 2, epoch: 'e2', recovered: false, oldestSeq: 1 }))
        for (let seq = 1; seq <= 2; seq++) sendFrame(socket, { ...userMessage(seq, `e2-${seq}`), id: `e2-${seq}` })
      } else {
        sendFrame(socket, welcome({ seq: 2, epoch: 'e2', recovered: true, oldestSeq: 1 }))
        return
      }
      sendFrame(socket, { type: 'reconnect', afterMs: 0 })
      socket.close(1012)
    })
    const client = await runtime.start({ url: server.url, token: 'u1' })
    t.after(() => client.call('close'))
    await client.until((e) => statuses(e).filter((s) => s === 'open').length === 3 && messages(e).length === 5, 'three connections, five messages')
    assert.equal(server.requests[0]?.search, '')
    assert.equal(server.requests[1]?.search, '?since=3&epoch=e1')
    assert.equal(server.requests[2]?.search, '?since=2&epoch=e2')
    const resets = client.events.filter((e) => e.type === 'reset').map((e) => e.args[0])
    assert.deepEqual(resets, [{ reason: 'epoch', previousSeq: 3, previousEpoch: 'e1', epoch: 'e2', oldestSeq: 1, seq: 2 }])
    assert.deepEqual(messages(client.events).map((m) => m.data), ['m1', 'm2', 'm3', 'e2-1', 'e2-2'])
    assert.equal(await client.get('epoch'), 'e2')
    assert.equal(await client.get('lastSeq'), 2)
  })

  test(name('recovered: false in the same epoch is reported, and the held messages are kept'), async (t) => {
    const server = await scriptedServer(t, (socket, n) => {
      if (n === 0) {
        sendFrame(socket, welcome({ seq: 5, epoch: 'e1' }))
        sendFrame(socket, userMessage(5))
        socket.close(1013)
      } else {
        sendFrame(socket, welcome({ seq: 21, epoch: 'e1', recovered: false, oldestSeq: 20 }))
        sendFrame(socket, userMessage(20))
        sendFrame(socket, userMessage(21))
      }
    })
    const client = await runtime.start({ url: server.url, token: 'u1', reconnectDelayMs: 20 })
    t.after(() => client.call('close'))
    await client.until((e) => messages(e).length === 3, 'three messages')
    const resets = client.events.filter((e) => e.type === 'reset').map((e) => e.args[0])
    assert.deepEqual(resets, [{ reason: 'not-recovered', previousSeq: 5, previousEpoch: 'e1', epoch: 'e1', oldestSeq: 20, seq: 21 }])
    assert.deepEqual(messages(client.events).map((m) => m.seq), [5, 20, 21])
  })

  test(name('an embedded server restarted: its new epoch is noticed, and what was sent before and after the reconnect arrives'), async (t) => {
    const first = await build(t, bySubprotocol)
    const port = Number(new URL(first.url()).port)
    const client = await runtime.start({ url: first.url(), token: 'erin', reconnectDelayMs: 20, maxReconnectDelayMs: 100 })
    t.after(() => client.call('close'))
    await client.until((e) => statuses(e).includes('open'), 'open')
    for (let i = 1; i <= 3; i++) await first.app.wsc.sendToUser('erin', `before-${i}`)
    await client.until((e) => messages(e).length === 3, 'three messages')
    await first.app.close()
    // The same address, a new process' memory: seq starts again at 1.
    const { default: Fastify } = await import('fastify')
    const { default: wsc } = await import('../../plugins/index.js')
    const second = Fastify({ logger: false })
    t.after(() => second.close())
    await second.register(wsc, { server: { nodeId: 'restarted' }, metrics: { port: 0, host: '127.0.0.1' }, ...bySubprotocol })
    await second.listen({ port, host: '127.0.0.1' })
    // Numbered 1 and 2 again, in the new process's epoch; the client still holds lastSeq 3 of the old one.
    await second.wsc.sendToUser('erin', 'missed-1')
    await second.wsc.sendToUser('erin', 'missed-2')
    await client.until((e) => statuses(e).filter((s) => s === 'open').length === 2, 'reopened on the restarted server')
    await second.wsc.sendToUser('erin', 'live-1')
    await client.until((e) => messages(e).length === 6, 'the messages sent after the restart')
    const resets = client.events.filter((e) => e.type === 'reset').map((e) => e.args[0] as { reason: string, previousSeq: number })
    assert.equal(resets[0]?.reason, 'epoch')
    assert.equal(resets[0]?.previousSeq, 3)
    assert.deepEqual(messages(client.events).map((m) => m.data), ['before-1', 'before-2', 'before-3', 'missed-1', 'missed-2', 'live-1'])
    assert.deepEqual(messages(client.events).slice(3).map((m) => m.seq), [1, 2, 3])
  })

  test(name('a listener that throws is reported as an error event and changes nothing else'), async (t) => {
    const server = await scriptedServer(t, (socket) => {
      sendFrame(socket, welcome({ seq: 2 }))
      sendFrame(socket, userMessage(1))
      sendFrame(socket, userMessage(2))
    })
    const client = await runtime.start({ url: server.url, token: 'u1', throwOnMessage: true })
    t.after(() => client.call('close'))
    await client.until((e) => messages(e).length === 2 && e.filter((x) => x.type === 'error').length === 2, 'two messages, two errors')
    assert.match(String(client.events.find((e) => e.type === 'error')?.args[0]), /a listener bug/)
    assert.equal(await client.get('status'), 'open')
  })

  test(name('requests pending when the connection drops reject with UNAVAILABLE; none are sent while disconnected'), async (t) => {
    const server = await scriptedServer(t, (socket, n) => {
      sendFrame(socket, welcome())
      if (n === 0) socket.once('message', () => socket.close(1011, 'boom'))
    })
    const client = await runtime.start({ url: server.url, token: 'u1', reconnectDelayMs: 60_000 })
    t.after(() => client.call('close'))
    await client.until((e) => statuses(e).includes('open'), 'open')
    const pending = await client.call('publish', { room: 'r' }, 'hello')
    assert.deepEqual(pending, { ok: false, code: 'UNAVAILABLE', message: 'connection closed before the server answered' })
    await client.until((e) => statuses(e).includes('reconnecting:closed'), 'reconnecting')
    assert.deepEqual(await client.call('join', 'r'), { ok: false, code: 'UNAVAILABLE', message: 'not connected' })
  })
}

test('chromium: the only console errors are the failed connects the scenarios caused', () => {
  assert.deepEqual(unexpectedConsoleErrors(chromium.consoleErrors), [])
  assert.ok(chromium.consoleErrors.length > 0, 'the refused connects were logged by the browser')
})
