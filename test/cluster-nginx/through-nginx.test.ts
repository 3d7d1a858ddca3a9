// Needs nginx (Debian package; .ci/run installs it when missing) and redis-server.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startLocalCluster } from '../../scripts/local-cluster.js'
import { type Frame, TestClient, waitFor, within } from '../helper.js'
import { spreadOverNodes } from '../deploy/loopback-client.js'

const NODE_IDS = ['wsc-0', 'wsc-1', 'wsc-2']

/** POST /api/send through nginx; answers `{ id, seq }` for a user target. */
async function send (baseUrl: string, user: string, data: unknown): Promise<{ id: string, seq: number }> {
  const response = await fetch(`${baseUrl}/api/send`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ to: { user }, data }),
    signal: AbortSignal.timeout(5000)
  })
  assert.equal(response.status, 200, `POST /api/send to ${user}: ${await response.clone().text()}`)
  return await response.json() as { id: string, seq: number }
}

/** Reads message frames until every seq in `seqs` has arrived (duplicates are allowed and dropped). */
async function collect (client: TestClient, seqs: number[], ms = 10_000): Promise<Map<number, Frame>> {
  const got = new Map<number, Frame>()
  const deadline = Date.now() + ms
  while (!seqs.every((seq) => got.has(seq))) {
    const frame = await client.next('message', Math.max(1, deadline - Date.now()))
    got.set(Number(frame.seq), frame)
  }
  return got
}

test('through nginx, users on every node reach each other; a killed node\'s users resume with since and lose nothing', async (t) => {
  const cluster = await startLocalCluster()
  t.after(() => cluster.stop())

  const placed = await spreadOverNodes(cluster.wsUrl, NODE_IDS)
  assert.deepEqual([...placed.keys()].sort(), NODE_IDS, 'nginx spreads the clients over all three nodes')
  const users = [...placed.values()]

  // Every user writes to every other user: each message crosses from one node to another.
  for (const from of users) {
    for (const to of users) {
      if (to !== from) from.client.send({ type: 'publish', id: `${from.user}>${to.user}`, to: { user: to.user }, data: { from: from.user } })
    }
  }
  const lastSeq = new Map<string, number>()
  for (const from of users) {
    const acks = await Promise.all(users.filter((to) => to !== from).map(async () => from.client.next('ack')))
    assert.equal(acks.length, users.length - 1)
  }
  for (const to of users) {
    const frames = await Promise.all(users.filter((from) => from !== to).map(async () => to.client.next('message', 10_000)))
    assert.deepEqual(frames.map((f) => (f.data as { from: string }).from).sort(), users.filter((u) => u !== to).map((u) => u.user).sort(), `${to.user} hears from the users on the other nodes`)
    lastSeq.set(to.user, Math.max(...frames.map((f) => Number(f.seq))))
  }

  // The HTTP API through nginx reaches a user wherever they are connected.
  for (const to of users) {
    const { seq } = await send(cluster.url, to.user, { api: true })
    const frame = await to.client.next('message', 10_000)
    assert.equal(frame.seq, seq)
    lastSeq.set(to.user, seq)
  }

  // wsc-1 dies without a drain; messages keep coming for its user while it is offline.
  const victim = placed.get('wsc-1')
  assert.ok(victim)
  cluster.nodes[1]?.child.kill('SIGKILL')
  await within(victim.client.closed, 10_000, 'the close of the killed node\'s connection')
  const sent: number[] = []
  for (let i = 0; i < 5; i++) sent.push((await send(cluster.url, victim.user, { offline: i })).seq)
  const since = lastSeq.get(victim.user) ?? 0
  assert.deepEqual(sent, [1, 2, 3, 4, 5].map((i) => since + i), 'seq goes on without gaps')

  // nginx finds the dead upstream refusing, passes to the next server, and the client lands on a live node.
  const client = await TestClient.connect(`${cluster.wsUrl}?token=${victim.user}&since=${since}`, { localAddress: victim.address })
  const welcome: Record<string, unknown> = client.welcome ?? {}
  t.after(() => client.close())
  assert.ok(['wsc-0', 'wsc-2'].includes(String(welcome.nodeId)), `resumed on ${String(welcome.nodeId)}`)
  const replayed = await collect(client, sent)
  assert.deepEqual(sent.map((seq) => (replayed.get(seq)?.data as { offline: number }).offline), [0, 1, 2, 3, 4], 'every message sent while offline, in order')

  // And live traffic follows the replay on the new node.
  const live = await send(cluster.url, victim.user, { live: true })
  assert.ok((await collect(client, [live.seq])).has(live.seq))
  for (const [nodeId, { client: other }] of placed) if (nodeId !== 'wsc-1') await other.close()

  // nginx logs a WebSocket once it ends, by path only: the tokens in ?token= stay out of its log.
  const accessLog = join(cluster.dir, 'access.log')
  const logged = await waitFor(() => {
    const text = existsSync(accessLog) ? readFileSync(accessLog, 'utf8') : ''
    return /"GET \/ws\S* HTTP\/1\.1" 101 /.test(text) && text
  }, 10_000, 'nginx to log the closed WebSockets')
  assert.doesNotMatch(logged, /token=/)
  assert.match(logged, /"GET \/ws HTTP\/1\.1" 101 /)
})
