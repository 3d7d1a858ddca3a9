import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import type { TestContext } from 'node:test'

// Real network peers for the client's failure paths: a WebSocket server that follows a script (for what
// our server does not do on demand: a 1013, silence, an epoch change), a port that accepts TCP and
// never answers, and a TCP proxy whose connections the test can cut.

async function listen (server: Server | WebSocketServer): Promise<number> {
  if (server instanceof WebSocketServer) {
    await new Promise<void>((resolve) => server.once('listening', resolve))
    return (server.address() as AddressInfo).port
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

/** Send helper for scripted connections. */
export function sendFrame (socket: WebSocket, frame: Record<string, unknown>): void {
  socket.send(JSON.stringify(frame))
}

/** A `welcome` frame with defaults. */
export function welcome (fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'welcome', nodeId: 'scripted', connectionId: `c-${Math.random().toString(16).slice(2)}`, userId: 'u1', heartbeatMs: 30_000, seq: 0, ...fields }
}

/** A user `message` frame for seq `seq`. */
export function userMessage (seq: number, data: unknown = `m${seq}`): Record<string, unknown> {
  return { type: 'message', id: `id-${seq}`, seq, from: null, to: { user: 'u1' }, data, ts: Date.now() }
}

/**
 * A WebSocket server that runs `script` for each connection (n = 0, 1, …) and records each upgrade's
 * URL (so tests can read the `since` and `epoch` the client resumed with).
 */
export async function scriptedServer (t: TestContext, script: (socket: WebSocket, n: number) => void): Promise<{ url: string, requests: URL[] }> {
  const requests: URL[] = []
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'wsc.v1' })
  wss.on('connection', (socket, request) => {
    requests.push(new URL(request.url ?? '/', 'ws://x'))
    socket.on('error', () => {})
    script(socket, requests.length - 1)
  })
  const port = await listen(wss)
  t.after(async () => {
    for (const client of wss.clients) client.terminate()
    await new Promise((resolve) => wss.close(resolve))
  })
  return { url: `ws://127.0.0.1:${port}/ws`, requests }
}

/** A port that accepts TCP connections and never answers (an upgrade that hangs). */
export async function silentPort (t: TestContext): Promise<number> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  const port = await listen(server)
  t.after(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return port
}

/** A TCP proxy to 127.0.0.1:`targetPort`; `cut()` drops every connection through it without a close frame. */
export async function tcpProxy (t: TestContext, targetPort: number): Promise<{ port: number, cut: () => void, connections: () => number }> {
  const pairs = new Set<[Socket, Socket]>()
  let total = 0
  const server = createServer((downstream) => {
    total++
    const upstream = connect(targetPort, '127.0.0.1')
    const pair: [Socket, Socket] = [downstream, upstream]
    pairs.add(pair)
    for (const socket of pair) {
      socket.on('error', () => {})
      socket.on('close', () => {
        pairs.delete(pair)
        downstream.destroy()
        upstream.destroy()
      })
    }
    downstream.pipe(upstream).pipe(downstream)
  })
  const port = await listen(server)
  t.after(async () => {
    for (const pair of pairs) for (const socket of pair) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return {
    port,
    // resetAndDestroy sends a TCP RST: the peer sees the connection die, as when a node is killed.
    cut: () => { for (const [downstream, upstream] of pairs) { downstream.resetAndDestroy(); upstream.destroy() } },
    connections: () => total
  }
}
