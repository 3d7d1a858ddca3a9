// Load generator for the Socket.IO peer: socket.io-client over WebSocket only, same figures and the same
// publishes (an event acknowledged by the server) as ws-clients.
import { io, type Socket } from 'socket.io-client'
import { countMessage, serveLoad } from './receiver.js'

const sockets: Socket[] = []

async function connected (base: string, user: string): Promise<Socket> {
  const socket = io(base.replace(/^ws/, 'http').replace(/\/ws$/, ''), { transports: ['websocket'], auth: { token: user }, reconnection: false, forceNew: true })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect_error', reject)
    socket.once('connect', () => resolve())
  })
  sockets.push(socket)
  return socket
}

serveLoad(async (base, user, sampled, room) => {
  const socket = await connected(base, user)
  socket.on('message', (data: { t?: number }) => countMessage(sampled ? data.t : undefined))
  if (room !== undefined) await new Promise<void>((resolve) => socket.emit('join', room, resolve))
}, async (base, user) => {
  const socket = await connected(base, user)
  // The ws protocol's publish frame as a Socket.IO event with an acknowledgement.
  return { publish: async (to, data) => { await socket.emitWithAck('publish', { to: { user: to }, data }) } }
}, async () => {
  for (const socket of sockets.splice(0)) socket.disconnect()
})
