// Load generator for the Socket.IO peer: socket.io-client over WebSocket only, same figures as ws-clients.
import { io, type Socket } from 'socket.io-client'
import { countMessage, serveLoad } from './receiver.js'

const sockets: Socket[] = []

serveLoad(async (base, user, sampled, room) => {
  const socket = io(base.replace(/^ws/, 'http').replace(/\/ws$/, ''), { transports: ['websocket'], auth: { token: user }, reconnection: false, forceNew: true })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect_error', reject)
    socket.once('connect', () => resolve())
  })
  socket.on('message', (data: { t?: number }) => countMessage(sampled ? data.t : undefined))
  if (room !== undefined) await new Promise<void>((resolve) => socket.emit('join', room, resolve))
  sockets.push(socket)
}, async () => {
  for (const socket of sockets.splice(0)) socket.disconnect()
})
