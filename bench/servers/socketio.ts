// The peer: Socket.IO 4 with @socket.io/redis-adapter (when REDIS_ADDR is set), doing what users build
// with it — each socket joins a room named after its user, a send to a user is an emit to that room.
import { createServer } from 'node:http'
import { createAdapter } from '@socket.io/redis-adapter'
import { Redis } from 'ioredis'
import { Server } from 'socket.io'
import { memoryAfterGc, now, serveCommands, yieldToLoop } from '../harness.js'

const http = createServer()
const io = new Server(http, { transports: ['websocket'], serveClient: false, perMessageDeflate: false, pingInterval: 3_600_000, pingTimeout: 3_600_000 })
const redisAddr = process.env.REDIS_ADDR
const clients: Redis[] = []
if (redisAddr !== undefined && redisAddr !== '') {
  const [host, port] = redisAddr.split(':')
  const pub = new Redis({ host, port: Number(port) })
  const sub = pub.duplicate()
  clients.push(pub, sub)
  io.adapter(createAdapter(pub, sub))
}

io.use((socket, next) => {
  const token = socket.handshake.auth.token as string | undefined
  if (token === undefined) return next(new Error('unauthorized'))
  socket.data.userId = token
  next()
})

io.on('connection', (socket) => {
  socket.join(`user:${String(socket.data.userId)}`)
  socket.on('join', (room: string, ack?: () => void) => {
    socket.join(room)
    ack?.()
  })
})

serveCommands({
  listen: async () => {
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    return (http.address() as { port: number }).port
  },
  fanout: async ({ room, count, size }) => {
    const pad = 'x'.repeat(Number(size))
    const started = now()
    for (let i = 0; i < Number(count); i++) {
      io.to(String(room)).emit('message', { i, t: now(), pad })
      if (i % 10 === 9) await yieldToLoop()
    }
    return { ms: now() - started }
  },
  sendToUsers: async ({ users, count, ratePerSecond, size }) => {
    const targets = users as string[]
    const pad = 'x'.repeat(Number(size ?? 0))
    const rate = Number(ratePerSecond ?? 0)
    const started = now()
    for (let i = 0; i < Number(count); i++) {
      const user = targets[Math.floor(Math.random() * targets.length)] as string
      io.to(`user:${user}`).emit('message', { i, t: now(), pad })
      if (rate > 0) {
        const due = started + ((i + 1) * 1000) / rate
        const wait = due - now()
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
      } else if (i % 50 === 49) await yieldToLoop()
    }
    return { ms: now() - started, failed: 0 }
  },
  memory: () => ({ ...memoryAfterGc(), connections: io.engine.clientsCount })
})
