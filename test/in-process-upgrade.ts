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

/**
 * The client's end of an in-memory connection. A client that stops reading holds up the server's
 * writes: they stay in the server socket's write buffer (`bufferedAmount`), as with a full TCP window.
 */
export interface ClientWire {
  stream: Duplex
  /** The server's writes stay unfinished from now on. */
  stopReading: () => void
  /** Delivers the writes held meanwhile, in order, and lets later ones through. */
  resumeReading: () => void
}

/** Two connected duplex streams; what the server writes, the client reads, and back. */
function streamPair (): { client: ClientWire, server: Duplex } {
  const ends: { client?: Duplex, server?: Duplex } = {}
  let held: Array<() => void> | undefined
  const side = (other: () => Duplex | undefined, gated: boolean): Duplex => new Duplex({
    allowHalfOpen: false,
    read () {},
    // Delivered on a later turn, as a socket would: ws arms its close timer right after a write.
    write (chunk, _encoding, callback) {
      const deliver = (): void => {
        setImmediate(() => other()?.push(chunk))
        callback()
      }
      if (gated && held !== undefined) held.push(deliver)
      else deliver()
    },
    final (callback) {
      setImmediate(() => other()?.push(null))
      callback()
    },
    // After the writes already under way, as TCP delivers what was sent before a reset: a refused
    // upgrade's answer (written, then the socket destroyed) reaches the client.
    destroy (err, callback) {
      setImmediate(() => {
        const peer = other()
        if (peer !== undefined && !peer.destroyed) peer.destroy()
      })
      callback(err)
    }
  })
  const client = ends.client = side(() => ends.server, false)
  const server = ends.server = side(() => ends.client, true)
  return {
    server,
    client: {
      stream: client,
      stopReading: () => { held ??= [] },
      resumeReading: () => {
        const writes = held ?? []
        held = undefined
        for (const deliver of writes) deliver()
      }
    }
  }
}

/**
 * Hands `path` of `app` (ready, not listening) an upgrade request over a new stream pair; `onHead`
 * gets the status of the answer and the bytes after its head, once the head has arrived.
 */
function requestUpgrade (app: FastifyInstance, path: string, headers: Record<string, string>, onHead: (status: number, rest: Buffer, wire: ClientWire) => void): ClientWire {
  const { client: wire, server } = streamPair()
  let head = ''
  const onData = (chunk: Buffer): void => {
    head += chunk.toString('latin1')
    const end = head.indexOf('\r\n\r\n')
    if (end < 0) return
    wire.stream.off('data', onData)
    onHead(Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), Buffer.from(head.slice(end + 4), 'latin1'), wire)
  }
  wire.stream.on('data', onData)
  const request = {
    method: 'GET',
    url: path,
    httpVersion: '1.1',
    headers: { host: 'in-process', connection: 'upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64'), ...headers },
    socket: server
  }
  app.server.emit('upgrade', request, server, Buffer.alloc(0))
  return wire
}

/**
 * Upgrades `path` of `app` (ready, not listening) for a `ws` client; `onInit` sees the client (and
 * its wire) before any frame arrives. Rejects with the status of a refused upgrade.
 */
export function upgradeInProcess (app: FastifyInstance, path: string, headers: Record<string, string>, onInit: (client: WebSocket, wire: ClientWire) => void): Promise<WebSocket> {
  const client = new WebSocket(null as unknown as string, undefined, { isServer: false } as WebSocket.ClientOptions)
  return new Promise((resolve, reject) => {
    const wire = requestUpgrade(app, path, headers, (status, rest) => {
      if (status !== 101) {
        wire.stream.destroy()
        reject(new Error(`Unexpected server response: ${status}`))
        return
      }
      // As the client side of a handshake it made: masks its frames, expects unmasked ones.
      const raw = client as unknown as { _isServer: boolean, setSocket: (socket: Duplex, head: Buffer, options: { maxPayload: number }) => void }
      raw._isServer = false
      client.once('open', () => resolve(client))
      raw.setSocket(wire.stream, rest, { maxPayload: 0 })
    })
    onInit(client, wire)
  })
}

/**
 * Upgrades `path` of `app` for a client that writes raw bytes (frames of its own making, masked or
 * not); resolves with its wire once the server answered 101 (the stream is paused, with the bytes
 * after the head put back), rejects with the status of a refused upgrade.
 */
export function rawUpgradeInProcess (app: FastifyInstance, path: string, headers: Record<string, string> = {}): Promise<ClientWire> {
  return new Promise((resolve, reject) => {
    requestUpgrade(app, path, headers, (status, rest, wire) => {
      wire.stream.pause()
      if (rest.length > 0) wire.stream.unshift(rest)
      if (status === 101) resolve(wire)
      else {
        wire.stream.destroy()
        reject(new Error(`Unexpected server response: ${status}`))
      }
    })
  })
}
