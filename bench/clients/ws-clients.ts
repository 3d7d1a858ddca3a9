// Load generator for fastify-wsc, the bare ws baseline and the minimal router: `ws` clients speaking
// protocol v1. Only sampled connections parse frames (for latency), so the client stays cheaper than the
// server. Publishers send `publish` frames with an id and wait for its `ack`.
import type { Socket as NetSocket } from 'node:net'
import WebSocket from 'ws'
import { countMessage, serveLoad } from './receiver.js'

const sockets: WebSocket[] = []

/** Opens a connection as `user`; resolves once its `welcome` arrived. */
async function welcomed (base: string, user: string): Promise<WebSocket> {
  const socket = new WebSocket(`${base}?token=${user}`, { perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.once('message', (data) => {
      const type = (JSON.parse(data.toString()) as { type: string }).type
      if (type === 'welcome') resolve()
      else reject(new Error(`expected welcome, got ${type}`))
    })
  })
  socket.on('error', () => {})
  sockets.push(socket)
  return socket
}

serveLoad(async (base, user, sampled, room) => {
  const socket = await welcomed(base, user)
  if (room !== undefined) {
    await new Promise<void>((resolve) => {
      const joined = (data: WebSocket.RawData): void => {
        if ((JSON.parse(data.toString()) as { type: string }).type !== 'joined') return
        socket.off('message', joined)
        resolve()
      }
      socket.on('message', joined)
      socket.send(JSON.stringify({ type: 'join', room }))
    })
  }
  socket.on('message', (data) => {
    if (!sampled) return countMessage(undefined)
    const frame = JSON.parse(data.toString()) as { type: string, data?: { t?: number } }
    if (frame.type === 'message') countMessage(frame.data?.t)
  })
}, async (base, user) => {
  const socket = await welcomed(base, user)
  const waiting = new Map<string, { resolve: () => void, reject: (err: Error) => void }>()
  socket.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as { type: string, id?: string, code?: string, message?: string }
    const waiter = frame.id === undefined ? undefined : waiting.get(frame.id)
    if (waiter === undefined) return
    waiting.delete(frame.id as string)
    if (frame.type === 'ack') waiter.resolve()
    else waiter.reject(new Error(`publish ${String(frame.id)} refused: ${String(frame.code)} ${String(frame.message)}`))
  })
  // The frames of one event-loop turn go out in one write: one syscall per frame made this process,
  // not the server, the limit of the fastest baseline (a profile showed it busy 80 % of the time).
  const tcp = (socket as unknown as { _socket: NetSocket })._socket
  let corked = false
  let next = 0
  return {
    publish: async (to, data) => new Promise<void>((resolve, reject) => {
      const id = `c-${++next}`
      waiting.set(id, { resolve, reject })
      if (!corked) {
        corked = true
        tcp.cork()
        process.nextTick(() => {
          corked = false
          tcp.uncork()
        })
      }
      socket.send(JSON.stringify({ type: 'publish', id, to: { user: to }, data }))
    })
  }
}, async () => {
  await Promise.all(sockets.splice(0).map((socket) => new Promise<void>((resolve) => {
    if (socket.readyState === WebSocket.CLOSED) return resolve()
    socket.once('close', () => resolve())
    socket.terminate()
  })))
})
