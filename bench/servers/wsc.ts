// fastify-wsc under load: the example's shape (token = user id), limits opened up for benchmarking.
import Fastify from 'fastify'
import wsc from 'fastify-wsc'
import { memoryAfterGc, now, serveCommands, yieldToLoop } from '../harness.js'

const app = Fastify({ logger: false })
await app.register(wsc, {
  nodeId: process.env.BENCH_NODE_ID ?? 'bench-0',
  authenticate: (request) => {
    const token = (request.query as { token?: string }).token
    return token === undefined ? null : { userId: token }
  },
  websocket: { maxConnections: 50_000, messageBufferSize: 1_000_000, maxBufferedBytes: '1024MiB', rateLimit: 0, heartbeatInterval: '1h' },
  metrics: { port: 0 }
})

serveCommands({
  listen: async () => {
    await app.listen({ port: 0, host: '127.0.0.1' })
    return (app.server.address() as { port: number }).port
  },
  fanout: async ({ room, count, size }) => {
    const pad = 'x'.repeat(Number(size))
    const started = now()
    for (let i = 0; i < Number(count); i++) {
      await app.wsc.sendToRoom(String(room), { i, t: now(), pad })
      if (i % 10 === 9) await yieldToLoop()
    }
    return { ms: now() - started }
  },
  sendToUsers: async ({ users, count, ratePerSecond, size }) => {
    const targets = users as string[]
    const pad = 'x'.repeat(Number(size ?? 0))
    const rate = Number(ratePerSecond ?? 0)
    const started = now()
    let failed = 0
    const inFlight: Array<Promise<unknown>> = []
    for (let i = 0; i < Number(count); i++) {
      const user = targets[Math.floor(Math.random() * targets.length)] as string
      inFlight.push(app.wsc.sendToUser(user, { i, t: now(), pad }).catch(() => { failed++ }))
      if (inFlight.length >= 200) await Promise.all(inFlight.splice(0))
      if (rate > 0) {
        const due = started + ((i + 1) * 1000) / rate
        const wait = due - now()
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
      } else if (i % 50 === 49) await yieldToLoop()
    }
    await Promise.all(inFlight)
    return { ms: now() - started, failed }
  },
  memory: async () => ({ ...memoryAfterGc(), connections: await app.wsc.onlineCount() })
})
