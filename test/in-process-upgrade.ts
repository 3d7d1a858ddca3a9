/**
 * WebSocket upgrades without a port: the client and the server talk over a pair of in-memory streams
 * handed to the app's HTTP server as an `upgrade`, as @fastify/websocket's `injectWS` does. Its
 * streams never emit 'close' after a close handshake (each close waits for ws's 30 s timeout); these
 * behave as a TCP socket does: when both sides have ended, both close.
 */
import { randomBytes } from 'node:crypto'
import { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'

/** Two connected duplex streams; what one writes, the other reads. */
function streamPair (): [Duplex, Duplex] {
  const ends: { left?: Duplex, right?: Duplex } = {}
  const side = (other: () => Duplex | undefined): Duplex => new Duplex({
    allowHalfOpen: false,
    read () {},
    // Delivered on a later turn, as a socket would: ws arms its close timer right after a write.
    write (chunk, _encoding, callback) {
      setImmediate(() => other()?.push(chunk))
      callback()
    },
    final (callback) {
      setImmediate(() => other()?.push(null))
      callback()
    },
    destroy (err, callback) {
      const peer = other()
      if (peer !== undefined && !peer.destroyed) peer.destroy()
      callback(err)
    }
  })
  const left = ends.left = side(() => ends.right)
  const right = ends.right = side(() => ends.left)
  return [left, right]
}

/**
 * Upgrades `path` of `app` (ready, not listening) for a `ws` client; `onInit` sees the client before
 * any frame arrives. Rejects with the status of a refused upgrade.
 */
export function upgradeInProcess (app: FastifyInstance, path: string, headers: Record<string, string>, onInit: (client: WebSocket) => void): Promise<WebSocket> {
  const [clientStream, serverStream] = streamPair()
  const client = new WebSocket(null as unknown as string, undefined, { isServer: false } as WebSocket.ClientOptions)
  onInit(client)
  return new Promise((resolve, reject) => {
    let head = ''
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1')
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      clientStream.off('data', onData)
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1])
      if (status !== 101) {
        clientStream.destroy()
        reject(new Error(`Unexpected server response: ${status}`))
        return
      }
      const rest = Buffer.from(head.slice(end + 4), 'latin1')
      // As the client side of a handshake it made: masks its frames, expects unmasked ones.
      const raw = client as unknown as { _isServer: boolean, setSocket: (socket: Duplex, head: Buffer, options: { maxPayload: number }) => void }
      raw._isServer = false
      client.once('open', () => resolve(client))
      raw.setSocket(clientStream, rest, { maxPayload: 0 })
    }
    clientStream.on('data', onData)
    const request = {
      method: 'GET',
      url: path,
      httpVersion: '1.1',
      headers: { host: 'in-process', connection: 'upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64'), ...headers },
      socket: serverStream
    }
    app.server.emit('upgrade', request, serverStream, Buffer.alloc(0))
  })
}
