import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort, startNodes, startRedisServer, uniquePrefix } from '../redis-harness.js'
import { connect, presenceAndNodesAgree, roomAcrossNodes, userToUser } from './redis-scenarios.js'
import { waitFor } from '../helper.js'

const MASTER_NAME = 'wsc-test-master'

/** A Sentinel process monitoring `masterPort`; stopped and its directory removed in `t.after`. */
async function startSentinel (t: TestContext, masterPort: number): Promise<{ addr: string, client: Redis }> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'wsc-sentinel-'))
  const conf = join(dir, 'sentinel.conf')
  writeFileSync(conf, [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${masterPort} 1`,
    `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
    `sentinel failover-timeout ${MASTER_NAME} 5000`
  ].join('\n') + '\n')
  const child = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' })
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 })
  client.on('error', () => {})
  t.after(async () => {
    client.disconnect()
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
    rmSync(dir, { recursive: true, force: true })
  })
  await waitFor(async () => {
    try {
      if (client.status === 'wait') await client.connect()
      const master = await client.call('SENTINEL', 'get-master-addr-by-name', MASTER_NAME) as string[] | null
      return master?.[1] === String(masterPort)
    } catch {
      return false
    }
  }, 10_000, 'the sentinel to monitor the master')
  return { addr: `127.0.0.1:${port}`, client }
}

async function sentinelNodes (t: TestContext, sentinel: string): Promise<Awaited<ReturnType<typeof startNodes>>> {
  const prefix = uniquePrefix()
  return startNodes(t, 3, { prefix, extra: { redis: { addr: '', sentinels: [sentinel], masterName: MASTER_NAME, prefix } } })
}

async function throughSentinel (t: TestContext): Promise<Awaited<ReturnType<typeof startNodes>>> {
  const master = await startRedisServer(t)
  const sentinel = await startSentinel(t, master.port)
  const nodes = await sentinelNodes(t, sentinel.addr)
  assert.equal(nodes[0]?.router.mode, 'sentinel')
  return nodes
}

test('Sentinel: nodes find the master through the sentinel; a user reaches every device on other nodes', async (t) => {
  await userToUser(t, await throughSentinel(t))
})

test('Sentinel: a room spans three nodes', async (t) => {
  await roomAcrossNodes(t, await throughSentinel(t))
})

test('Sentinel: presence and nodes() agree on every node', async (t) => {
  await presenceAndNodesAgree(t, await throughSentinel(t))
})

test('Sentinel: after a failover to the replica, delivery across nodes resumes without restarting the nodes', async (t) => {
  const master = await startRedisServer(t)
  const replica = await startRedisServer(t, ['--replicaof', '127.0.0.1', String(master.port)])
  const sentinel = await startSentinel(t, master.port)
  const [a, b] = await sentinelNodes(t, sentinel.addr)
  assert.ok(a && b)
  const bob = await connect(t, b, 'bob')
  await a.app.wsc.sendToUser('bob', 'before')
  assert.equal((await bob.next('message')).data, 'before')

  // The replica has the data (presence, registry); make it the master.
  const replicaClient = new Redis({ port: replica.port, host: '127.0.0.1' })
  t.after(() => replicaClient.disconnect())
  await waitFor(async () => (await replicaClient.info('replication')).includes('master_link_status:up'), 10_000, 'the replica to sync')
  await sentinel.client.call('SENTINEL', 'failover', MASTER_NAME)
  await waitFor(async () => {
    const current = await sentinel.client.call('SENTINEL', 'get-master-addr-by-name', MASTER_NAME) as string[]
    return current[1] === String(replica.port)
  }, 15_000, 'the sentinel to promote the replica')

  const sent = await waitFor(async () => a.app.wsc.sendToUser('bob', 'after failover').catch(() => undefined), 20_000, 'a send through the new master')
  const after = await bob.next('message', 10_000)
  assert.equal(after.data, 'after failover')
  assert.equal(after.seq, sent.seq)
  assert.ok((sent.seq as number) > 0)
})
