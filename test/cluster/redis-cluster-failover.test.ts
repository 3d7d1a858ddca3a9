/**
 * Redis Cluster topology changes under traffic: a master killed during user traffic between two nodes
 * (its replica takes over), a room's slot moved to another master, a frozen master that carries
 * only a room's channel (the loopback probe covers every shard the node subscribes on), and a frozen
 * master that carries a receiving node's channel (the send is stored but not pushed: its seq is reported).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { clusterSlot } from '../../lib/redis/shard-subscriptions.js'
import { testDatabase } from '../backends.js'
import { Device } from '../example-node.js'
import { waitFor } from '../helper.js'
import { redisClient, startNodes, startRedisCluster, uniquePrefix, type RedisClusterHandle, type TestNode } from '../redis-harness.js'
import { connect } from './redis-scenarios.js'

test('a master killed during user traffic between two nodes: its replica takes over, delivery resumes, no accepted message is lost', async (t) => {
  const cluster = await startRedisCluster(t, { replicas: 1, nodeTimeout: 1000 })
  const db = await testDatabase(t)
  const prefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { prefix, clusterNodes: cluster.seeds, heartbeatMs: 500, extra: { mysql: { url: db.url } } })
  assert.ok(a && b)
  // The master to kill carries B's node channel: every message to B's users is published there, so
  // sends wait (ioredis retries through the failover) and B must re-subscribe on the promoted replica.
  const victim = cluster.initialMasterOf(`${prefix}node:${b.nodeId}`)
  // Three users per master (their presence, seq and inbox keys live there), each with a device on B.
  const users: string[] = []
  for (const master of cluster.masters) {
    for (let i = 0; users.filter((user) => cluster.initialMasterOf(`${prefix}presence:{${user}}`) === master.addr).length < 3; i++) {
      const user = `u-${master.addr.split(':')[1]}-${i}`
      if (cluster.initialMasterOf(`${prefix}presence:{${user}}`) === master.addr) users.push(user)
    }
  }
  const devices = users.map((user) => new Device(user))
  for (const device of devices) t.after(async () => device.client?.close())
  for (const device of devices) await device.connect(b.url)

  const accepted = new Map<string, number[]>(users.map((user) => [user, []]))
  const refused = new Map<string, number>()
  let acceptedDuringFailover = 0
  let slowestSendMs = 0
  let failingOver = false
  const traffic = { sending: true }
  // One sender per user, concurrently: a send that waits on the dead master holds up only its own user.
  const senders = Promise.all(users.map(async (user) => {
    for (let n = 0; traffic.sending; n++) {
      const start = performance.now()
      try {
        const { seq } = await a.app.wsc.sendToUser(user, { n })
        slowestSendMs = Math.max(slowestSendMs, performance.now() - start)
        accepted.get(user)?.push(seq as number)
        if (failingOver) acceptedDuringFailover++
      } catch (err) {
        const code = (err as { code?: string }).code ?? String(err)
        refused.set(code, (refused.get(code) ?? 0) + 1)
      }
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }))
  // A failed assertion must not leave the senders looping: their timers would keep this file's process alive.
  t.after(async () => {
    traffic.sending = false
    await senders
  })
  const receivedLive = (): number => devices.reduce((sum, device) => sum + device.seqs().size, 0)
  await waitFor(() => receivedLive() >= 50, 10_000, 'traffic to flow before the kill')

  const victimSlot = clusterSlot(`${prefix}node:${b.nodeId}`)
  const killedAt = performance.now()
  failingOver = true
  await cluster.processes.get(victim)?.kill('SIGKILL')
  const promoted = await waitFor(async () => {
    const master = await cluster.masterOf(victimSlot).catch(() => victim)
    return master !== victim ? master : undefined
  }, 20_000, 'a replica to take over the killed master\'s slots')
  const failoverMs = performance.now() - killedAt
  failingOver = false
  assert.ok(cluster.replicas.get(victim)?.includes(promoted), `${promoted} was a replica of ${victim}`)

  // Delivery resumes on the open connections: messages accepted from now on arrive live, for every user.
  const resumeFrom = new Map(users.map((user) => [user, accepted.get(user)?.length ?? 0]))
  const notResumed = (): string[] => devices.flatMap((device) => {
    const later = accepted.get(device.user)?.slice(resumeFrom.get(device.user)) ?? []
    return later.length >= 2 && later.every((seq) => device.seqs().has(seq))
      ? []
      : [`${device.user} (${later.length} accepted since, missing ${later.filter((seq) => !device.seqs().has(seq)).join(' ') || 'none'})`]
  })
  await waitFor(() => notResumed().length === 0, 20_000, 'live delivery to resume for every user').catch((err: Error) => {
    // Which users, and what each router reports, say where a resumption stalled.
    throw new Error(`${err.message}: not resumed for ${notResumed().join(', ')}; router A ${JSON.stringify(a.app.wsc.routerStatus())}, router B ${JSON.stringify(b.app.wsc.routerStatus())}; refused so far ${JSON.stringify([...refused])}`)
  })
  const resumedMs = performance.now() - killedAt
  await waitFor(() => a.app.wsc.routerStatus().up && b.app.wsc.routerStatus().up, 10_000, 'both routers to report up (a probe round on every shard)')
  traffic.sending = false
  await senders

  const live = receivedLive()
  // The clients resume with `since`: every accepted message is delivered, none lost.
  for (const device of devices) {
    await device.client?.close()
    await device.connect(a.url)
    const last = accepted.get(device.user)?.at(-1) ?? 0
    await waitFor(() => device.lastSeq >= last, 10_000, `${device.user} to catch up to seq ${last}`)
  }
  const lost = devices.flatMap((device) => (accepted.get(device.user) ?? []).filter((seq) => !device.seqs().has(seq)).map((seq) => `${device.user}#${seq}`))
  const total = [...accepted.values()].reduce((sum, seqs) => sum + seqs.length, 0)
  t.diagnostic(`killed master ${victim}: replica ${promoted} serves its slots after ${Math.round(failoverMs)} ms; live delivery to every user resumed after ${Math.round(resumedMs)} ms`)
  t.diagnostic(`sends: ${total} accepted, ${[...refused.values()].reduce((sum, n) => sum + n, 0)} refused (${[...refused].map(([code, n]) => `${code}: ${n}`).join(', ')}); ${acceptedDuringFailover} accepted between the kill and the promotion; slowest accepted send ${Math.round(slowestSendMs)} ms; ${live} accepted messages arrived live before the clients resumed; lost: ${lost.length}`)
  assert.deepEqual(lost, [], 'every accepted message reached its device')
})

test('a room\'s slot moves to another master: its members get room traffic again and no subscription stays behind', async (t) => {
  const cluster = await startRedisCluster(t)
  const prefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { prefix, clusterNodes: cluster.seeds, heartbeatMs: 300 })
  assert.ok(a && b)
  const member = await connect(t, b, 'mia')
  member.send({ type: 'join', room: 'moving' })
  await member.next('joined')
  await a.app.wsc.sendToRoom('moving', 'before')
  assert.equal((await member.next('message')).data, 'before')

  const channel = `${prefix}room:moving`
  const slot = clusterSlot(channel)
  const from = cluster.initialMasterOf(channel)
  const to = cluster.masters.find((master) => master.addr !== from)?.addr as string
  const ids = new Map<string, string>()
  for (const master of cluster.masters) ids.set(master.addr, await redisClient(t, master.addr).cluster('MYID') as string)
  await redisClient(t, to).cluster('SETSLOT', slot, 'IMPORTING', ids.get(from) as string)
  await redisClient(t, from).cluster('SETSLOT', slot, 'MIGRATING', ids.get(to) as string)
  for (const master of [to, from, ...cluster.masters.map((m) => m.addr).filter((addr) => addr !== to && addr !== from)]) {
    await redisClient(t, master).cluster('SETSLOT', slot, 'NODE', ids.get(to) as string)
  }
  const moved = performance.now()
  await waitFor(async () => {
    const [, count] = await redisClient(t, to).pubsub('SHARDNUMSUB', channel) as [string, number]
    return Number(count) === 1
  }, 10_000, 'node B to subscribe the room on its new master')
  t.diagnostic(`room channel subscribed on its new master ${Math.round(performance.now() - moved)} ms after the slot moved`)
  const [, left] = await redisClient(t, from).pubsub('SHARDNUMSUB', channel) as [string, number]
  assert.equal(Number(left), 0, 'no subscription stays on the old master')
  await a.app.wsc.sendToRoom('moving', 'after')
  assert.equal((await member.next('message')).data, 'after')
  await waitFor(() => b.app.wsc.routerStatus().up, 5000, 'B to verify the loop on the new shard')
})

/**
 * A cluster of 3 masters whose processes a test may freeze, and nodes A and B on it. A long node
 * timeout keeps the other masters serving while one is frozen (no failover, no cluster_state:fail).
 */
async function freezableCluster (t: TestContext): Promise<{ cluster: RedisClusterHandle, prefix: string, a: TestNode, b: TestNode }> {
  const cluster = await startRedisCluster(t, { nodeTimeout: 60_000 })
  // Registered before the nodes: after-hooks run in order, so a failed test thaws the master before the nodes close.
  t.after(() => { for (const node of cluster.processes.values()) node.resume() })
  const prefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { prefix, clusterNodes: cluster.seeds, heartbeatMs: 300 })
  assert.ok(a && b)
  return { cluster, prefix, a, b }
}

test('a frozen master that carries only a room of the node: the router reports that shard down, and up again once it answers', async (t) => {
  const { cluster, prefix, a, b } = await freezableCluster(t)
  // B's own channel and the broadcast channel live on at most two of the three masters.
  const busy = new Set([cluster.initialMasterOf(`${prefix}node:${b.nodeId}`), cluster.initialMasterOf(`${prefix}broadcast`)])
  const quiet = cluster.masters.find((master) => !busy.has(master.addr))
  assert.ok(quiet !== undefined)
  let room = ''
  for (let i = 0; room === ''; i++) if (cluster.initialMasterOf(`${prefix}room:r${i}`) === quiet.addr) room = `r${i}`
  const member = await connect(t, b, 'ria')
  member.send({ type: 'join', room })
  await member.next('joined')
  await waitFor(() => b.app.wsc.routerStatus().up, 5000, 'B up with the room subscribed')

  cluster.processes.get(quiet.addr)?.pause()
  const down = await waitFor(() => {
    const status = b.app.wsc.routerStatus()
    return status.up ? undefined : status
  }, 10_000, 'B to report the shard of its room down')
  assert.match(down.detail, new RegExp(`shard ${quiet.addr.replace(/\./g, '\\.')}`), down.detail)
  cluster.processes.get(quiet.addr)?.resume()
  await waitFor(() => b.app.wsc.routerStatus().up, 15_000, 'B up again once the master answers')
  await a.app.wsc.sendToRoom(room, 'thawed')
  assert.equal((await member.next('message')).data, 'thawed')
})

test('a frozen master that carries the receiving node\'s channel: the send is stored, refused as WSC_ERR_STORED_NOT_DELIVERED with its seq, and reaches the user later', async (t) => {
  const { cluster, prefix, a, b } = await freezableCluster(t)
  const frozen = cluster.initialMasterOf(`${prefix}node:${b.nodeId}`)
  // A user whose keys (counter, inbox, presence) live on another master: the append succeeds, the publish cannot.
  let user = ''
  for (let i = 0; user === ''; i++) if (cluster.initialMasterOf(`${prefix}presence:{v${i}}`) !== frozen) user = `v${i}`
  const device = await connect(t, b, user)
  const first = await a.app.wsc.sendToUser(user, 'before')
  assert.equal((await device.next('message')).seq, first.seq)

  cluster.processes.get(frozen)?.pause()
  const refusal = await a.app.wsc.sendToUser(user, 'while frozen').then(() => undefined, (err: unknown) => err as Error & { code?: string, seq?: number, id?: string })
  cluster.processes.get(frozen)?.resume()
  assert.ok(refusal !== undefined, 'the send is not reported delivered')
  assert.equal(refusal.code, 'WSC_ERR_STORED_NOT_DELIVERED', refusal.message)
  assert.equal(refusal.seq, (first.seq ?? 0) + 1, 'it was numbered and stored')
  assert.match(refusal.message, /stored as seq \d+ but not pushed/)
  // Stored: the user gets it with the next message (its seq gap is read from the store), once, in order.
  await waitFor(() => b.app.wsc.routerStatus().up, 15_000, 'B up again once the master answers')
  const next = await a.app.wsc.sendToUser(user, 'after')
  const seen = [(await device.next('message')), (await device.next('message'))].map((frame) => [frame.seq, frame.data])
  assert.deepEqual(seen, [[refusal.seq, 'while frozen'], [next.seq, 'after']])
})
