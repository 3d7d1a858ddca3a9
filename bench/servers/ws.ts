// The baseline: a bare `ws` server doing the same work with the least code — token from the query,
// rooms in a Map, one pre-serialized frame written to every member.
import { createServer } from 'node:http'
import { WebSocketServer, type WebSocket } from 'ws'
import { memoryAfterGc, now, paced, serveCommands } from '../harness.js'

const rooms = new Map<string, Set<WebSocket>>()
const server = createServer((_req, res) => res.writeHead(404).end())
const wss = new WebSocketServer({ server, maxPayload: 64 * 1024, perMessageDeflate: false })
let connections = 0

wss.on('connection', (socket, request) => {
  const url = new URL(request.url ?? '/', 'http://x')
  const token = url.searchParams.get('token')
  if (token === null) {
    socket.close(1008)
    return
  }
  connections++
  socket.send(JSON.stringify({ type: 'welcome', userId: token }))
  socket.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as { type: string, room?: string }
    if (frame.type === 'join' && frame.room !== undefined) {
      let members = rooms.get(frame.room)
      if (members === undefined) rooms.set(frame.room, members = new Set())
      members.add(socket)
      socket.send(JSON.stringify({ type: 'joined', room: frame.room }))
    }
  })
  socket.on('close', () => {
    connections--
    for (const members of rooms.values()) members.delete(socket)
  })
})

serveCommands({
  listen: async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return (server.address() as { port: number }).port
  },
  fanout: async ({ room, count, size }) => {
    const pad = 'x'.repeat(Number(size))
    const members = rooms.get(String(room)) ?? new Set()
    return {
      ms: await paced(Number(count), { yieldEvery: 10 }, (i) => {
        const frame = Buffer.from(JSON.stringify({ type: 'message', to: { room }, data: { i, t: now(), pad } }))
        for (const socket of members) socket.send(frame, { binary: false })
      })
    }
  },
  memory: () => ({ ...memoryAfterGc(), connections })
})
