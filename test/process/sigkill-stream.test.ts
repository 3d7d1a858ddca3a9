import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { testDatabase } from '../backends.js'
import { Device, startExampleNode, sendToUser, type SendOutcome } from '../example-node.js'
import { waitFor, within } from '../helper.js'
import { startRedisServer } from '../redis-harness.js'

const MESSAGES = 2000
const IN_FLIGHT = 16
const KILL_AFTER = 600
const USER = 'u-stream'

/**
 * 3 nodes; the user's device is on A; 2,000 sends to the user go through B and C (POST /api/send);
 * A is killed with SIGKILL during the stream; the device reconnects to B with `since`. The seqs it
 * received must be exactly those of the sends that resolved.
 */
async function killDuringStream (t: TestContext, withMySql: boolean): Promise<void> {
  const redis = await startRedisServer(t)
  const mysqlUrl = withMySql ? (await testDatabase(t)).url : undefined
  const [a, b, c] = await Promise.all(['node-a', 'node-b', 'node-c'].map((nodeId) =>
    startExampleNode(t, { nodeId, redisAddr: redis.addr, ...(mysqlUrl === undefined ? {} : { mysqlUrl }) })))
  assert.ok(a && b && c)

  const device = new Device(USER)
  const first = await device.connect(a.wsUrl)
  assert.equal(first.welcome?.nodeId, 'node-a')
  t.after(() => device.client?.close())

  const outcomes: SendOutcome[] = []
  let next = 0
  let killed: Promise<void> | undefined
  const kill = async (): Promise<void> => {
    a.child.kill('SIGKILL')
    assert.deepEqual(await within(a.exited, 5000, 'node A to die'), { code: null, signal: 'SIGKILL' })
    const dropped = await within(first.closed, 5000, 'the device to see its connection drop')
    const resumed = await device.connect(b.wsUrl)
    assert.equal(resumed.welcome?.nodeId, 'node-b')
    t.diagnostic(`SIGKILL after ${outcomes.length} resolved sends; the device saw close ${dropped.code} and resumed on node-b with since=${new URL(resumed.socket.url).searchParams.get('since')}`)
  }
  const sender = async (): Promise<void> => {
    while (next < MESSAGES) {
      const key = next++
      outcomes.push(await sendToUser(key % 2 === 0 ? b : c, USER, { key }))
      if (outcomes.length === KILL_AFTER) killed = kill()
    }
  }
  await within(Promise.all(Array.from({ length: IN_FLIGHT }, sender)), 60_000, `${MESSAGES} sends`)
  assert.ok(killed !== undefined, 'node A was killed during the stream')
  await killed

  const resolved = new Map<number, string>()
  for (const outcome of outcomes) if (outcome.ok) resolved.set(outcome.seq, outcome.id)
  const refused = outcomes.filter((outcome) => !outcome.ok)
  // Every resolved send is eventually on the device: wait for that (or for the deadline), then compare.
  await waitFor(() => {
    const seen = new Set(device.received.map((frame) => frame.seq))
    return [...resolved.keys()].every((seq) => seen.has(seq))
  }, 15_000, 'the device to receive every resolved send', 100).catch(() => {})

  const receivedSeqs = new Set(device.received.map((frame) => frame.seq))
  const lost = [...resolved.keys()].filter((seq) => !receivedSeqs.has(seq)).sort((x, y) => x - y)
  const unexpected = [...receivedSeqs].filter((seq) => !resolved.has(seq)).sort((x, y) => x - y)
  const duplicates = device.received.length - receivedSeqs.size
  t.diagnostic(`${withMySql ? 'Redis + MySQL' : 'Redis inbox only'}: ${MESSAGES} sends, ${resolved.size} resolved, ${refused.length} refused; ` +
    `lost ${lost.length}, duplicates ${duplicates}, out-of-order arrivals ${device.outOfOrder}`)
  assert.deepEqual(refused, [], 'B and C stayed up: every send resolves')
  assert.equal(device.outOfOrder, 0, 'user messages reach a connection in seq order, so the highest seq received is a safe since')
  assert.deepEqual(lost, [], 'no send that resolved is missing on the device')
  assert.deepEqual(unexpected, [], 'the device received nothing but the sends that resolved')
  for (const frame of device.received) assert.equal(frame.id, resolved.get(frame.seq), `seq ${frame.seq} carries the id its send resolved with`)
}

test('SIGKILL of the node holding a user during 2,000 sends (Redis + MySQL): the device resumes on another node and loses nothing', async (t) => {
  await killDuringStream(t, true)
})

test('SIGKILL of the node holding a user during 2,000 sends (Redis inbox only): the device resumes on another node and loses nothing', async (t) => {
  await killDuringStream(t, false)
})
