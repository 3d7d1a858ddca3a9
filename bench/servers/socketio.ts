// The peer: Socket.IO 4 with @socket.io/redis-adapter (when REDIS_ADDR is set), doing what users build
// with it — each socket joins a room named after its user, a send to a user is an emit to that room.
import { createServer } from 'node:http'
import { createAdapter } from '@socket.io/redis-adapter'
import { Redis } from 'ioredis'
import { Server } from 'socket.io'
import { memoryAfterGc, now, paced, sendToRandomUsers, serveCommands } from '../harness.js'

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
  // A user's message to a user, as the ws protocol's `publish` frame: acknowledged once handed to the adapter.
  socket.on('publish', (frame: { to: { user: string }, data: unknown }, ack?: () => void) => {
    io.to(`user:${frame.to.user}`).emit('message', frame.data)
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
    return { ms: await paced(Number(count), { yieldEvery: 10 }, (i) => io.to(String(room)).emit('message', { i, t: now(), pad })) }
  },
  sendToUsers: async (args) => sendToRandomUsers(args, (user, data) => io.to(`user:${user}`).emit('message', data)),
  memory: () => ({ ...memoryAfterGc(), connections: io.engine.clientsCount })
})
