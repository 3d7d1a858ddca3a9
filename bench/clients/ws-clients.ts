// Load generator for fastify-wsc and the bare ws baseline: `ws` clients speaking protocol v1. Only
// sampled connections parse frames (for latency), so the client stays cheaper than the server.
import WebSocket from 'ws'
import { countMessage, serveLoad } from './receiver.js'

const sockets: WebSocket[] = []

serveLoad(async (base, user, sampled, room) => {
  const socket = new WebSocket(`${base}?token=${user}`, { perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    let phase: 'welcome' | 'joined' | 'live' = 'welcome'
    socket.on('message', (data) => {
      if (phase === 'live') {
        if (!sampled) return countMessage(undefined)
        const frame = JSON.parse(data.toString()) as { type: string, data?: { t?: number } }
        if (frame.type === 'message') countMessage(frame.data?.t)
        return
      }
      const type = (JSON.parse(data.toString()) as { type: string }).type
      if (phase === 'welcome' && type === 'welcome') {
        if (room === undefined) {
          phase = 'live'
          resolve()
        } else {
          phase = 'joined'
          socket.send(JSON.stringify({ type: 'join', room }))
        }
      } else if (phase === 'joined' && type === 'joined') {
        phase = 'live'
        resolve()
      }
    })
  })
  socket.on('error', () => {})
  sockets.push(socket)
}, async () => {
  await Promise.all(sockets.splice(0).map((socket) => new Promise<void>((resolve) => {
    if (socket.readyState === WebSocket.CLOSED) return resolve()
    socket.once('close', () => resolve())
    socket.terminate()
  })))
})
