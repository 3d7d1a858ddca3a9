import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { buildInProcess, capturedLogs, noopObserver, within } from '../helper.js'
import { encodeFrame, Opcode, RawClient } from './raw-client.js'

/** What the metrics plugin would count, kept in the test. */
interface Tally {
  framesIn: number
  dropped: Record<string, number>
  closed: number[]
}

function tally (app: FastifyInstance): Tally {
  const seen: Tally = { framesIn: 0, dropped: {}, closed: [] }
  app.wsc.observe({
    ...noopObserver,
    connectionClosed (code) { seen.closed.push(code) },
    frameIn () { seen.framesIn++ },
    dropped (reason) { seen.dropped[reason] = (seen.dropped[reason] ?? 0) + 1 }
  })
  return seen
}

/** Resolves with the close code of the next connection the node releases. */
function nextDisconnect (app: FastifyInstance): Promise<number> {
  return new Promise((resolve) => app.wsc.once('disconnect', ({ code }) => resolve(code)))
}

test('a client that ignores the 1008 and keeps flooding costs one warn line and a handful of counts, and is dropped soon', { timeout: 30_000 }, async (t) => {
  const { lines, stream } = capturedLogs()
  const { app } = await buildInProcess(t, { websocket: { rateLimit: 10, rateBurst: 10, rateLimitStrikes: 5 } }, { logger: { level: 'debug', stream } })
  const seen = tally(app)
  const released = nextDisconnect(app)
  const client = await RawClient.open(app, '/ws?token=flooder')
  await client.until(() => client.json.some((frame) => frame.type === 'welcome'), 5000, 'welcome')
  // 20,000 pings in 64 KiB writes, as they would come off a fast TCP connection; the client reads
  // the server's close frame and goes on regardless.
  const burst = Buffer.concat(Array.from({ length: 20_000 }, () => encodeFrame('{"type":"ping"}')))
  for (let offset = 0; offset < burst.length; offset += 65_536) client.write(burst.subarray(offset, offset + 65_536))
  const ended = await within(client.ended, 10_000, 'the server to drop the connection').then(() => undefined, (err: Error) => err)

  const abuse = lines.filter((line) => line.msg === 'sustained rate-limit abuse')
  assert.equal(abuse.length, 1, `one abuse line, not ${abuse.length}`)
  const connectionId = abuse[0]?.connectionId
  const aboutIt = lines.filter((line) => line.connectionId === connectionId)
  assert.ok(aboutIt.length <= 5, `at most 5 log lines for the client, not ${aboutIt.length}`)
  assert.ok((seen.dropped.rate_limit ?? 0) <= 5, `dropped{reason="rate_limit"} counts the refusals before the close (5), not ${seen.dropped.rate_limit}`)
  assert.ok(seen.framesIn <= 15, `frames_in counts the 15 frames read before the close, not ${seen.framesIn}`)
  assert.equal(client.closeCode, 1008)
  assert.equal(ended, undefined, 'the connection is dropped once the close handshake times out')
  assert.equal(await within(released, 5000, 'the release'), 1008)
  assert.deepEqual(seen.closed, [1008], 'closed connections count the code the server sent, not 1006')
})

test('a client that never reads while its replay runs is closed with 1013 once the held live messages pass max_buffered_bytes', { timeout: 30_000 }, async (t) => {
  const { app, open } = await buildInProcess(t, { websocket: { maxBufferedBytes: '1MiB' } })
  const seen = tally(app)
  // About 630 KB of stored messages: the replay's first page fills more than half of the send buffer,
  // so the replay waits for the client to read, and live messages are held meanwhile.
  for (let i = 0; i < 200; i++) await app.wsc.sendToUser('sleeper', { i, text: 'r'.repeat(3000) })
  const connected = new Promise<void>((resolve) => app.wsc.once('connect', () => resolve()))
  const overflowed = new Promise<void>((resolve) => app.wsc.observe({ ...noopObserver, dropped: (reason) => { if (reason === 'slow_consumer') resolve() } }))
  const client = open('token=sleeper&since=0')
  client.wire?.stopReading()
  await within(connected, 5000, 'the connection to be set up')
  // 100 live messages of 30 KB (3 MB): never more than max_buffered_bytes may be held for the client.
  for (let i = 0; i < 100; i++) await app.wsc.sendToUser('sleeper', { live: i, text: 'L'.repeat(30_000) })
  await within(overflowed, 5000, 'the connection to overflow')
  assert.equal(seen.dropped.slow_consumer, 1)
  client.wire?.resumeReading()
  assert.equal((await within(client.closed, 5000, 'the close')).code, 1013)
  const replayed = client.frames.filter((frame) => frame.type === 'message').map((frame) => Number(frame.seq))
  assert.deepEqual(replayed, Array.from({ length: replayed.length }, (_, i) => i + 1), 'what was written went out in seq order')
})

test('invalid UTF-8 (1007) and an unmasked frame (1002): the server closes with that code, drops a client that does not answer, and counts that code', { timeout: 30_000 }, async (t) => {
  const { app } = await buildInProcess(t, { metrics: { enabled: true } })
  const seen = tally(app)
  for (const [bytes, code] of [[encodeFrame(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), 1007], [encodeFrame('{"type":"ping"}', { masked: false }), 1002]] as const) {
    const released = nextDisconnect(app)
    const client = await RawClient.open(app, '/ws?token=garbler')
    await client.until(() => client.json.some((frame) => frame.type === 'welcome'), 5000, 'welcome')
    client.write(bytes)
    await client.until(() => client.closeCode !== undefined, 5000, 'a close frame')
    assert.equal(client.closeCode, code)
    await within(client.ended, 10_000, `the server to drop the connection after its ${code}`)
    assert.equal(await within(released, 5000, 'the release'), code)
  }
  assert.deepEqual(seen.closed, [1007, 1002])
  assert.equal(seen.framesIn, 0, 'neither frame reached the protocol')
  // A client that does answer its close still gets it counted as it was sent.
  const polite = await RawClient.open(app, '/ws?token=polite')
  await polite.until(() => polite.json.some((frame) => frame.type === 'welcome'), 5000, 'welcome')
  const released = nextDisconnect(app)
  polite.send('{"type":"ping"}', { opcode: Opcode.PING, fin: false })
  await polite.until(() => polite.closeCode !== undefined, 5000, 'a close frame')
  polite.send(Buffer.from([0x03, 0xea]), { opcode: Opcode.CLOSE })
  assert.equal(await within(released, 5000, 'the release'), 1002)
  const closed = await app.wscMetrics.registry.getSingleMetric('wsc_connections_closed_total')?.get()
  assert.deepEqual(Object.fromEntries((closed?.values ?? []).map(({ labels, value }) => [String(labels.code), value])), { 1002: 2, 1007: 1 }, 'wsc_connections_closed_total: no 1006')
})
