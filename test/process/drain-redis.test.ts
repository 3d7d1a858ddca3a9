import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { testDatabase } from '../backends.js'
import { Device, startExampleNode, sendToUser, type SendOutcome } from '../example-node.js'
import { TestClient, waitFor, within } from '../helper.js'
import { redisClient, startRedisServer } from '../redis-harness.js'

const USERS = Array.from({ length: 20 }, (_, i) => `user-${i}`)
const TARGET = 'user-0'

async function drainWithRedis (t: TestContext, withMySql: boolean): Promise<void> {
  const redis = await startRedisServer(t)
  const mysqlUrl = withMySql ? (await testDatabase(t)).url : undefined
  const db = redisClient(t, redis.addr)
  // A heartbeat of 10 s: the registry entry lives 30 s, so no peer reaps it during the test; whatever is
  // gone right after the exit, the draining node removed itself.
  const env = { WSC_NODE_HEARTBEAT_INTERVAL: '10s', WSC_INBOX_SIZE: '100000', WSC_DRAIN_WINDOW: '1500ms', WSC_RECONNECT_JITTER: '0' }
  const [a, b] = await Promise.all(['node-a', 'node-b'].map((nodeId) => startExampleNode(t, { nodeId, redisAddr: redis.addr, env, ...(mysqlUrl === undefined ? {} : { mysqlUrl }) })))
  assert.ok(a && b)

  const device = new Device(TARGET)
  const first = await device.connect(a.wsUrl)
  t.after(() => device.client?.close())
  const others = await Promise.all(USERS.slice(1).map((user) => TestClient.connect(a.wsUrl(`token=${user}`))))
  t.after(() => Promise.all(others.map((client) => client.close())))
  await waitFor(async () => (await db.scard('wsc:node-users:node-a')) === USERS.length, 5000, 'node A to publish its presence')
  assert.notEqual(await db.get('wsc:nodes:node-a'), null)
  assert.notEqual(await db.zscore('wsc:node-index', 'node-a'), null)
  for (const user of USERS) assert.ok(Object.values(await db.hgetall(`wsc:presence:{${user}}`)).includes('node-a'), `${user} is on node A`)

  // Sends go through the node that drains, before SIGTERM and for as long as it answers.
  const outcomes: Array<SendOutcome & { at: number }> = []
  const stop = { sending: true }
  const sender = async (): Promise<void> => {
    for (let key = 0; stop.sending; key++) {
      const outcome = await sendToUser(a, TARGET, { key })
      outcomes.push({ ...outcome, at: performance.now() })
      if (!outcome.ok && outcome.status === 0) return
    }
  }
  const senders = Promise.all(Array.from({ length: 4 }, sender))
  await waitFor(() => outcomes.filter((outcome) => outcome.ok).length >= 100, 10_000, 'sends to resolve before SIGTERM')

  // The device moves to B when node A tells it to, with since=<highest seq received>.
  const moved = first.next('reconnect', 10_000).then(async () => {
    assert.equal((await first.closed).code, 1012)
    return device.connect(b.wsUrl)
  })
  const signalAt = performance.now()
  a.child.kill('SIGTERM')
  assert.deepEqual(await within(a.exited, 20_000, 'node A to exit'), { code: 0, signal: null })
  stop.sending = false
  await within(senders, 10_000, 'the senders to stop')
  assert.equal((await within(moved, 5000, 'the device to move to node B')).welcome?.nodeId, 'node-b')

  assert.equal(await db.get('wsc:nodes:node-a'), null, 'wsc:nodes:node-a is gone')
  assert.equal(await db.zscore('wsc:node-index', 'node-a'), null, 'node A left the node index')
  assert.equal(await db.exists('wsc:node-users:node-a'), 0, "node A's user set is gone")
  for (const user of USERS) {
    assert.ok(!Object.values(await db.hgetall(`wsc:presence:{${user}}`)).includes('node-a'), `no presence entry of ${user} points at node A`)
  }
  assert.notEqual(await db.get('wsc:nodes:node-b'), null, 'node B is still registered')

  const resolved = new Map<number, string>()
  for (const outcome of outcomes) if (outcome.ok) resolved.set(outcome.seq, outcome.id)
  const duringDrain = outcomes.filter((outcome) => outcome.ok && outcome.at > signalAt).length
  const refused = outcomes.filter((outcome) => !outcome.ok)
  t.diagnostic(`${withMySql ? 'Redis + MySQL' : 'Redis inbox only'}: ${outcomes.length} sends through node A: ${resolved.size} resolved (${duringDrain} after SIGTERM), ${refused.length} refused: ` +
    [...new Set(refused.map((outcome) => outcome.ok ? '' : `${outcome.status} ${outcome.code}`))].join(', '))
  assert.ok(duringDrain > 0, 'sends resolved while node A was draining')
  for (const outcome of refused) {
    assert.ok(!outcome.ok && ((outcome.status === 503 && outcome.code === 'WSC_ERR_CLOSED') || outcome.status === 0), `a send is refused only as closed: ${JSON.stringify(outcome)}`)
  }

  // The device that moved has every resolved send, each once per seq and in order.
  await waitFor(() => [...resolved.keys()].every((seq) => device.seqs().has(seq)), 10_000, 'the moved device to hold every resolved send', 50)
    .catch(() => {})
  assert.deepEqual([...resolved.keys()].filter((seq) => !device.seqs().has(seq)), [], 'the moved device lost no resolved send')
  assert.equal(device.outOfOrder, 0)

  // A second device replays everything from node B: every resolved send is there with its id.
  const replay = await TestClient.connect(b.wsUrl(`token=${TARGET}&since=0`))
  t.after(() => replay.close())
  const latest = replay.welcome?.seq as number
  const replayed = new Map<number, string>()
  await within((async () => {
    for (let top = 0; top < latest;) {
      const frame = await replay.next('message', 10_000)
      top = frame.seq as number
      replayed.set(top, frame.id as string)
    }
  })(), 20_000, `the replay up to seq ${latest}`)
  const missing = [...resolved].filter(([seq, id]) => replayed.get(seq) !== id)
  assert.deepEqual(missing, [], 'every send that resolved is in the replay from node B, with its id')
}

test('SIGTERM with Redis (inbox only): the node deregisters itself (registry, index, presence) and every resolved send is in the replay from another node', async (t) => {
  await drainWithRedis(t, false)
})

test('SIGTERM with Redis + MySQL: the node deregisters itself (registry, index, presence) and every resolved send is in the replay from another node', async (t) => {
  await drainWithRedis(t, true)
})
