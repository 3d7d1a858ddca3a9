import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TestClient, waitFor } from '../helper.js'
import { startServer } from '../server-process.js'

const fixture = new URL('../fixtures/server.ts', import.meta.url).pathname

interface ReadyBody {
  status: string
  checks: Array<{ name: string, state: string, latencyMs: number | null, detail: string }>
}

async function get (url: string): Promise<{ status: number, body: unknown }> {
  const response = await fetch(url)
  return { status: response.status, body: await response.json() }
}

test('a blocked event loop: /ready and new upgrades get 503, /health stays 200, open connections stay', async (t) => {
  const server = await startServer(t, ['--import', 'tsx', fixture], {
    WSC_MAX_EVENT_LOOP_DELAY: '100ms',
    WSC_HEALTH_SAMPLE_INTERVAL: '100ms'
  })
  // Start-up work (tsx compiling the fixture) can itself delay the loop past 100 ms: wait for calm first.
  const readyBody = await waitFor(async () => {
    const answer = await get(`${server.baseUrl}/ready`)
    return answer.status === 200 ? answer.body as ReadyBody : undefined
  }, 15_000, '/ready to answer 200 after start-up')
  assert.equal(readyBody.status, 'ready')
  assert.deepEqual(readyBody.checks.map((check) => [check.name, check.state]), [['node', 'pass'], ['router', 'pass'], ['pressure', 'pass']])
  const early = await TestClient.connect(server.wsUrl('token=early'))

  server.child.send({ type: 'block', ms: 300 })
  const notReady = await waitFor(async () => {
    const answer = await get(`${server.baseUrl}/ready`)
    return answer.status === 503 ? answer.body as ReadyBody : undefined
  }, 15_000, '/ready to answer 503')
  assert.equal(notReady.status, 'unavailable')
  const pressure = notReady.checks.find((check) => check.name === 'pressure')
  assert.equal(pressure?.state, 'fail')
  assert.match(pressure?.detail ?? '', /event-loop delay over 100 ms/)
  // A loop blocked through a whole sample interval leaves no delay sample: under-pressure says Infinity, null in JSON.
  assert.ok((pressure?.latencyMs ?? Infinity) > 100, `the check reports the event-loop delay: ${JSON.stringify(pressure)}`)
  assert.equal(notReady.checks.find((check) => check.name === 'router')?.state, 'pass')

  const refusal = await TestClient.refusal(server.wsUrl('token=late'))
  assert.equal(refusal.statusCode, 503)
  assert.equal(refusal.headers['retry-after'], '5')
  const health = await get(`${server.baseUrl}/health`)
  assert.equal(health.status, 200)
  assert.deepEqual(health.body, { status: 'ok' })
  early.send({ type: 'ping' })
  await early.next('pong', 10_000)
  assert.ok(server.logs.some((line) => line.msg === 'upgrade refused: under pressure' && line.statusCode === 503 && line.level === 40), 'the refusal is logged at warn')

  server.child.send({ type: 'unblock' })
  await waitFor(async () => (await fetch(`${server.baseUrl}/ready`)).status === 200 ? true : undefined, 15_000, '/ready to answer 200 again')
  const late = await TestClient.connect(server.wsUrl('token=late'))
  await Promise.all([early.close(), late.close()])
  server.child.kill('SIGKILL')
  await server.exited
})
