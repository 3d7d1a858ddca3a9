/**
 * A WebSocket client that writes frames of its own making, valid or not, and ignores whatever the
 * server says (a close frame included): the hostile tests' peer. It speaks over the in-memory wire
 * of the in-process tier, so nothing but the server under test limits how fast it writes.
 */
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { rawUpgradeInProcess, type ClientWire } from '../in-process-upgrade.js'
import { within } from '../helper.js'

export const Opcode = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const

export interface FrameShape {
  opcode?: number
  fin?: boolean
  /** RSV1–3 bits, 0–7. */
  rsv?: number
  /** Clients must mask; false sends the payload in the clear (a protocol error). */
  masked?: boolean
  /** A length field that lies about the payload (the payload is sent as given). */
  declaredLength?: number
}

/** One frame as a client writes it. */
export function encodeFrame (payload: Buffer | string, shape: FrameShape = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload
  const { opcode = Opcode.TEXT, fin = true, rsv = 0, masked = true, declaredLength = data.length } = shape
  const lengthBytes = declaredLength < 126 ? 0 : declaredLength < 65536 ? 2 : 8
  const head = Buffer.alloc(2 + lengthBytes + (masked ? 4 : 0))
  head[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0xf)
  head[1] = (masked ? 0x80 : 0) | (lengthBytes === 0 ? declaredLength : lengthBytes === 2 ? 126 : 127)
  if (lengthBytes === 2) head.writeUInt16BE(declaredLength, 2)
  if (lengthBytes === 8) head.writeBigUInt64BE(BigInt(declaredLength), 2)
  if (!masked) return Buffer.concat([head, data])
  const mask = randomBytes(4)
  mask.copy(head, 2 + lengthBytes)
  const body = Buffer.allocUnsafe(data.length)
  for (let i = 0; i < data.length; i++) body[i] = (data[i] as number) ^ (mask[i & 3] as number)
  return Buffer.concat([head, body])
}

export interface ServerFrame { opcode: number, payload: Buffer }

/** A raw client on an in-process app; it reads (and parses) what the server sends until told not to. */
export class RawClient {
  readonly wire: ClientWire
  readonly frames: ServerFrame[] = []
  /** Resolves when the server ended or destroyed the connection. */
  readonly ended: Promise<void>
  #buffer: Buffer = Buffer.alloc(0)
  #waiters: Array<() => void> = []

  private constructor (wire: ClientWire) {
    this.wire = wire
    this.ended = new Promise((resolve) => {
      wire.stream.once('close', () => {
        resolve()
        this.#wake()
      })
    })
    wire.stream.on('error', () => {})
    wire.stream.on('data', (chunk: Buffer) => this.#parse(chunk))
    wire.stream.resume()
  }

  /** Upgrades `path` (a 101 is required) and returns the client. */
  static async open (app: FastifyInstance, path: string, headers: Record<string, string> = {}): Promise<RawClient> {
    return new RawClient(await rawUpgradeInProcess(app, path, headers))
  }

  get isEnded (): boolean {
    return this.wire.stream.destroyed
  }

  /** Writes bytes as they are (false once the connection is gone). */
  write (bytes: Buffer): boolean {
    if (this.wire.stream.destroyed) return false
    return this.wire.stream.write(bytes)
  }

  /** Writes one text frame (or any frame, by `shape`). */
  send (payload: Buffer | string, shape?: FrameShape): boolean {
    return this.write(encodeFrame(payload, shape))
  }

  /** The JSON text frames received so far. */
  get json (): Array<Record<string, unknown>> {
    return this.frames.filter((f) => f.opcode === Opcode.TEXT).map((f) => JSON.parse(f.payload.toString()) as Record<string, unknown>)
  }

  /** The code of the close frame the server sent, if it sent one. */
  get closeCode (): number | undefined {
    const close = this.frames.find((f) => f.opcode === Opcode.CLOSE)
    return close === undefined || close.payload.length < 2 ? undefined : close.payload.readUInt16BE(0)
  }

  /** Waits until `predicate` holds over what arrived, failing after `ms`. */
  async until (predicate: () => boolean, ms: number, what: string): Promise<void> {
    await within((async () => {
      while (!predicate()) {
        if (this.isEnded) throw new Error(`connection ended while waiting for ${what}`)
        await new Promise<void>((resolve) => this.#waiters.push(resolve))
      }
    })(), ms, what)
  }

  destroy (): void {
    this.wire.stream.destroy()
  }

  #wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  #parse (chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
    for (;;) {
      const b = this.#buffer
      if (b.length < 2) break
      let length = (b[1] as number) & 0x7f
      let offset = 2
      if (length === 126) {
        if (b.length < 4) break
        length = b.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (b.length < 10) break
        length = Number(b.readBigUInt64BE(2))
        offset = 10
      }
      if (b.length < offset + length) break
      this.frames.push({ opcode: (b[0] as number) & 0xf, payload: b.subarray(offset, offset + length) })
      this.#buffer = b.subarray(offset + length)
    }
    this.#wake()
  }
}
