import { test } from 'node:test'
import assert from 'node:assert/strict'
import { buildInProcess, capturedLogs, noopObserver, waitFor } from '../helper.js'
import { fuzz } from './fuzzer.js'

// A fixed seed keeps CI repeatable; WSC_FUZZ_SEED explores others (a failure names its seed).
const SEED = Number(process.env.WSC_FUZZ_SEED ?? 20_240_612)
const MIB = 1024 * 1024

test('50,000 mutated frames: every batch answered, broken framing closed with its code, nothing logged as an error, the heap flat', { timeout: 120_000 }, async (t) => {
  const { lines, stream } = capturedLogs()
  // No rate limit, so that every frame reaches the parser and the handlers.
  const { app, connect } = await buildInProcess(t, { websocket: { rateLimit: 0, maxPayload: '64KiB' } }, { logger: { level: 'warn', stream } })
  const closed: number[] = []
  app.wsc.observe({ ...noopObserver, connectionClosed (code) { closed.push(code) } })
  const result = await fuzz(app, { frames: 50_000, seed: SEED, maxPayload: 64 * 1024 })
  assert.equal(result.frames, 50_000)
  assert.deepEqual(result.violations, [])
  assert.ok(result.connections > 1, 'broken frames closed connections, and the run went on with new ones')
  assert.deepEqual(Object.keys(result.closes).filter((code) => !['1002', '1003', '1007', '1009'].includes(code)), [], `close codes: ${JSON.stringify(result.closes)}`)
  assert.deepEqual(lines.filter((line) => line.level >= 50).map((line) => line.msg), [], `seed ${SEED}: no error line`)
  await waitFor(() => app.wsc.health().connections === 0, 10_000, 'every fuzz connection to be released')
  assert.equal(app.wsc.health().rooms, 0, 'no room outlives its members')
  const sentCodes = Object.entries(result.closes).flatMap(([code, n]) => Array<number>(n).fill(Number(code)))
  assert.deepEqual(closed.filter((code) => code !== 1006).sort(), sentCodes.sort(), 'each connection the server closed counts with the code it sent')
  const grown = (result.end.heapUsed - result.start.heapUsed) / MIB
  assert.ok(grown < 16, `heap grew ${grown.toFixed(1)} MiB over the run (seed ${SEED})`)
  const client = await connect('token=after')
  client.send({ type: 'ping' })
  await client.next('pong')
})
