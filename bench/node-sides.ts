// `npm run build && npx tsx bench/node-sides.ts [--quick]`: the CPU a node spends per cross-node user
// message on the sending side and on the receiving side, measured apart, fastify-wsc beside the minimal
// ws + Redis router (bench/servers/). The cross-node scenario measures both sides together, with Redis
// and the load generators on the same 2 cores; here one server process runs against a peer process
// (bench/clients/side-peer.ts) that plays the other node and the clients, and the server's own CPU time
// (from /proc) is divided by the messages. Sending: `sendToUser` to users another node hosts, 128 in
// flight (the peer reads what reaches that node's channels and counts it). Receiving: the peer sends
// as another node would (fastify-wsc: batches of 10 on the node's batch channel, as SEND_TO_USERS
// writes them; minimal: a PUBLISH per message) to 2,000 ws clients connected to the server.
import { BenchProcess } from './harness.js'
import { withBenchRedis, withProcesses } from './scenario.js'

const quick = process.argv.includes('--quick')
const MESSAGES = quick ? 20_000 : 60_000
const ROUNDS = 3
const USERS = 2000
const SIZE = 1024
const IN_FLIGHT = 128

interface System { name: string, server: string, path: string }
const SYSTEMS: System[] = [
  { name: 'fastify-wsc', server: './servers/wsc.ts', path: '/ws' },
  { name: 'minimal ws + Redis router', server: './servers/minimal-router.ts', path: '/' }
]

/** The median over ROUNDS (after a warm-up) of the server's CPU µs per message of `run`. */
async function cpuPerMessage (server: BenchProcess, run: () => Promise<unknown>): Promise<number> {
  await run()
  const figures: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const before = server.cpuSeconds()
    await run()
    figures.push((server.cpuSeconds() - before) * 1e6 / MESSAGES)
  }
  return figures.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)] as number
}

const users = Array.from({ length: USERS }, (_, i) => `u${i}`)

async function sendingSide (system: System): Promise<number> {
  return withBenchRedis(async (redis) => withProcesses([[system.server, { REDIS_ADDR: redis.addr, BENCH_NODE_ID: 'sender' }], ['./clients/side-peer.ts']], async ([server, peer]) => {
    if (server === undefined || peer === undefined) throw new Error('bench processes did not start')
    await server.call('listen')
    await peer.call('redis', { addr: redis.addr, channels: ['wsc:node-batch:other', 'wsc:node:other', 'minimal:node:other'] })
    // Every user is on node "other": in Redis presence for fastify-wsc, announced for the minimal router.
    const pipeline = redis.client.pipeline()
    for (const user of users) {
      pipeline.hset(`wsc:presence:{${user}}`, `other~c-${user}`, 'other')
      pipeline.publish('minimal:presence', `+ ${user} other`)
    }
    await pipeline.exec()
    if (system.server.includes('minimal')) await server.call('knowsUsers', { count: USERS })
    let published = 0
    return cpuPerMessage(server, async () => {
      published += MESSAGES
      await Promise.all([
        peer.call('awaitTotal', { total: published }),
        server.call('sendToUsers', { users, count: MESSAGES, ratePerSecond: 0, inFlight: IN_FLIGHT, size: SIZE })
      ])
    })
  }))
}

async function receivingSide (system: System): Promise<number> {
  return withBenchRedis(async (redis) => withProcesses([[system.server, { REDIS_ADDR: redis.addr, BENCH_NODE_ID: 'receiver' }], ['./clients/side-peer.ts']], async ([server, peer]) => {
    if (server === undefined || peer === undefined) throw new Error('bench processes did not start')
    const port = await server.call<number>('listen')
    await peer.call('redis', { addr: redis.addr, channels: [] })
    await peer.call('open', { url: `ws://127.0.0.1:${port}${system.path}`, users: USERS })
    return cpuPerMessage(server, async () => peer.call('feed', { system: system.name, count: MESSAGES, size: SIZE, batch: 10 }))
  }))
}

const rows: string[] = []
const figures = new Map<string, { sending: number, receiving: number }>()
for (const system of SYSTEMS) {
  const sending = await sendingSide(system)
  process.stderr.write(`${system.name}: sending ${sending.toFixed(1)} µs\n`)
  const receiving = await receivingSide(system)
  process.stderr.write(`${system.name}: receiving ${receiving.toFixed(1)} µs\n`)
  figures.set(system.name, { sending, receiving })
}
const [ours, minimal] = SYSTEMS.map((system) => figures.get(system.name) as { sending: number, receiving: number }) as [{ sending: number, receiving: number }, { sending: number, receiving: number }]
rows.push('| side | fastify-wsc | minimal ws + Redis router | ratio |', '|---|---|---|---|')
for (const side of ['sending', 'receiving'] as const) {
  rows.push(`| ${side} (µs of CPU per message, median of ${ROUNDS} runs of ${MESSAGES}) | ${ours[side].toFixed(1)} | ${minimal[side].toFixed(1)} | ${(ours[side] / minimal[side]).toFixed(2)}× |`)
}
console.log(`node ${process.version}, ${USERS} users, ${SIZE} B payloads${quick ? ', --quick' : ''}`)
console.log(rows.join('\n'))
