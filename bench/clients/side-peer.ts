// The other side of bench/node-sides.ts, in a process of its own so that its CPU is not counted: for
// the sending side, the node that hosts every user (it reads the batches and counts their messages); for
// the receiving side, the users' ws clients and the node that sends to them (prebuilt Pub/Sub messages).
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import WebSocket from 'ws'
import { serveCommands } from '../harness.js'

let redis: Redis | undefined
let subscriber: Redis | undefined
let received = 0
let waiter: { total: number, resolve: () => void } | undefined
const sockets: WebSocket[] = []
const seqs: number[] = []

function counted (n: number): void {
  received += n
  if (waiter !== undefined && received >= waiter.total) waiter.resolve()
}

/** Resolves once `total` messages were counted since the process started. */
async function untilTotal (total: number): Promise<void> {
  if (received >= total) return
  await new Promise<void>((resolve) => { waiter = { total, resolve } })
  waiter = undefined
}

const frame = (user: number, seq: number, pad: string): string =>
  `{"type":"message","id":"${randomUUID()}","seq":${seq},"from":null,"to":{"user":"u${user}"},"data":{"i":${seq},"pad":"${pad}"},"ts":${Date.now()}}`

serveCommands({
  /** Connects to Redis; reads the given channels, counting the messages in each Pub/Sub message (a batch's header lists them). */
  redis: async ({ addr, channels }) => {
    const [host, port] = String(addr).split(':')
    redis = new Redis({ host, port: Number(port) })
    subscriber = redis.duplicate()
    subscriber.on('message', (_channel: string, payload: string) => {
      counted(payload.startsWith('{"kind":"batch"') ? payload.split('\n').length - 1 : 1)
    })
    if ((channels as string[]).length > 0) await subscriber.subscribe(...(channels as string[]))
    return true
  },
  /** Resolves once `total` messages were counted in all (the count starts with the process). */
  awaitTotal: async ({ total }) => untilTotal(Number(total)),
  /** Opens a ws connection per user (`?token=u<i>`) and waits for each welcome. */
  open: async ({ url, users }) => {
    for (let i = 0; i < Number(users); i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, Number(users) - i) }, async (_, j) => new Promise<void>((resolve, reject) => {
        const socket = new WebSocket(`${String(url)}?token=u${i + j}`)
        socket.once('message', () => {
          socket.on('message', () => counted(1))
          resolve()
        })
        socket.once('error', reject)
        sockets.push(socket)
        seqs.push(0)
      })))
    }
    return sockets.length
  },
  /**
   * Sends `count` messages of `size` bytes to random users as another node would: fastify-wsc's batches
   * of `batch` on the node's batch channel, or the minimal router's one PUBLISH per message; resolves once
   * the clients received them all.
   */
  feed: async ({ system, count, size, batch }) => {
    const pad = 'x'.repeat(Number(size))
    const base = received
    for (let sent = 0; sent < Number(count); sent += Number(batch)) {
      const users = Array.from({ length: Number(batch) }, () => Math.floor(Math.random() * sockets.length))
      // A user twice in one batch gets two seqs, in order.
      const numbered = users.map((user) => ++(seqs[user] as number))
      const frames = users.map((user, i) => frame(user, numbered[i] as number, pad))
      if (system === 'fastify-wsc') {
        const events = users.map((user, i) => `{"kind":"deliver","target":{"user":"u${user}"},"seq":${numbered[i] as number},"publishedAt":${Date.now()}}`)
        await redis?.publish('wsc:node-batch:receiver', `{"kind":"batch","origin":"sender","events":[${events.join(',')}]}\n${frames.join('\n')}`)
      } else {
        await Promise.all(users.map(async (user, i) => redis?.publish('minimal:node:receiver', `u${user}\n${frames[i] as string}`)))
      }
      // About 2,000 messages in flight: the node is measured, not Redis's output buffer.
      await untilTotal(base + sent - 2000)
    }
    await untilTotal(base + Number(count))
    return count
  }
})
