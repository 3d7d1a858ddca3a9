/**
 * Protocol fuzzing: mutated client frames (JSON that is almost right, wrong types, lone surrogates,
 * deep nesting, truncation, flipped bytes) and broken WebSocket framing (unmasked, bad opcodes, RSV
 * bits, fragmented control frames, lying lengths, binary, invalid UTF-8) against an in-process app.
 * Every batch of frames ends with a ping whose ack proves the server read all of it and still
 * answers; a batch that ends with a frame that must close the connection (broken framing) checks that
 * it did, with a close frame, and goes on with a new connection. The test (`fuzz.test.ts`) and
 * `npm run fuzz` (scripts/fuzz.ts) run it.
 */
import v8 from 'node:v8'
import vm from 'node:vm'
import type { FastifyInstance } from 'fastify'
import { ErrorCode, MAX_NAME_LENGTH } from '../../lib/protocol.js'
import { within } from '../helper.js'
import { encodeFrame, Opcode, RawClient, type ServerFrame } from './raw-client.js'

/** A seeded generator (mulberry32): a failing run is repeated with its seed. */
export function random (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const SEEDS: ReadonlyArray<Record<string, unknown>> = [
  { type: 'ping' },
  { type: 'ping', id: 'p-1' },
  { type: 'join', room: 'lobby', id: 'j-1' },
  { type: 'leave', room: 'lobby', id: 'l-1' },
  { type: 'publish', id: 'c-3', to: { room: 'lobby' }, data: { text: 'hi', n: [1, 2, 3] } },
  { type: 'publish', id: 'c-4', to: { user: 'u2' }, data: 'x' },
  { type: 'ack', seq: 42, id: 7 }
]
const FIELDS = ['type', 'id', 'room', 'to', 'data', 'seq', 'user', '__proto__', 'constructor', 'prototype', 'toString']
const TYPES = ['ping', 'join', 'leave', 'publish', 'ack', 'pong', 'welcome', 'message', '', 'PING', 'hasOwnProperty', '__proto__']
const NASTY = (pick: <T>(values: readonly T[]) => T, int: (n: number) => number): unknown[] => [
  null, true, false, 0, -1, -0, 0.5, 1e308, -1e308, 2 ** 53, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER, '',
  'lobby', 'x'.repeat(257), 'y'.repeat(4000), 'caf\ud800', '\udc00', 'caf\ufffd', '\u0000', '\u2028', '😀',
  [], {}, [1, [2, [3]]], { user: 'u2' }, { room: 'lobby' }, { room: 'lobby', user: 'u2' }, { broadcast: true },
  { connection: 'test-node~1-ab' }, { __proto__: null, room: 'r' }, JSON.parse('{"__proto__":{"polluted":true}}'),
  pick(TYPES), `room-${int(1000)}`
]

const DEEP = '@@deep:'

/** A frame to send: its bytes, and whether the server must close the connection because of it. */
export interface FuzzFrame { bytes: Buffer, fatal: boolean }

function isUtf8 (bytes: Buffer): boolean {
  return Buffer.from(bytes.toString('utf8')).equals(bytes)
}

/** Makes mutated frames from `next` (a generator of numbers in [0, 1)). */
export class Mutator {
  readonly #next: () => number
  readonly #maxPayload: number

  /** @param maxPayload the app's `websocket.max_payload`: longer frames must close the connection (1009) */
  constructor (next: () => number, maxPayload: number) {
    this.#next = next
    this.#maxPayload = maxPayload
  }

  #int (n: number): number {
    return Math.floor(this.#next() * n)
  }

  #pick = <T>(values: readonly T[]): T => values[this.#int(values.length)] as T

  /**
   * A text frame: a known frame with fields changed, removed or added, or its JSON text damaged. Unless
   * `mayClose`, flipped bits that leave invalid UTF-8 (or a frame over the maximum) are not sent.
   */
  text (mayClose = false): FuzzFrame {
    const value = structuredClone(this.#pick(SEEDS)) as Record<string, unknown>
    const changes = 1 + this.#int(3)
    for (let i = 0; i < changes; i++) this.#mutateValue(value)
    let text = this.#serialize(value)
    if (this.#next() < 0.4) text = this.#damage(text)
    let payload = Buffer.from(text)
    if (this.#next() < 0.15) {
      const intact = Buffer.from(payload)
      // Flipped bits: often still UTF-8, sometimes not (then the server must close with 1007).
      for (let i = 0, n = 1 + this.#int(3); i < n && payload.length > 0; i++) {
        const at = this.#int(payload.length)
        payload[at] = (payload[at] as number) ^ (1 << this.#int(8))
      }
      if (!mayClose && !isUtf8(payload)) payload = intact
    }
    const fatal = !isUtf8(payload) || payload.length > this.#maxPayload
    if (fatal && !mayClose) return { bytes: encodeFrame('{"type":"ping"}'), fatal: false }
    if (!fatal && this.#next() < 0.1 && payload.length > 1) {
      // The same text in two fragments, sometimes with a ping between them (both are allowed).
      const cut = 1 + this.#int(payload.length - 1)
      const parts = [encodeFrame(payload.subarray(0, cut), { fin: false })]
      if (this.#next() < 0.5) parts.push(encodeFrame('between', { opcode: Opcode.PING }))
      parts.push(encodeFrame(payload.subarray(cut), { opcode: Opcode.CONTINUATION }))
      return { bytes: Buffer.concat(parts), fatal }
    }
    return { bytes: encodeFrame(payload), fatal }
  }

  /** A frame the WebSocket layer must refuse by closing the connection (1002, 1003, 1007, 1009). */
  broken (): FuzzFrame {
    const body = '{"type":"ping"}'
    const frames: Array<() => Buffer> = [
      () => encodeFrame(body, { masked: false }),
      () => encodeFrame(body, { opcode: this.#pick([0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]) }),
      () => encodeFrame(body, { rsv: 1 + this.#int(7) }),
      () => encodeFrame(body, { opcode: Opcode.CONTINUATION }),
      () => encodeFrame('x', { opcode: Opcode.PING, fin: false }),
      () => encodeFrame('p'.repeat(126), { opcode: Opcode.PING }),
      () => encodeFrame(Buffer.from([1, 2, 3]), { opcode: Opcode.BINARY }),
      () => encodeFrame(Buffer.from([0x7b, 0xc3, 0x28, 0x7d])),
      () => encodeFrame(Buffer.from([0x03, 0xe7]), { opcode: Opcode.CLOSE }),
      () => encodeFrame(Buffer.from([0x03]), { opcode: Opcode.CLOSE }),
      () => encodeFrame('', { declaredLength: this.#maxPayload + 1 + this.#int(1 << 20) }),
      () => Buffer.concat([encodeFrame('{"type":', { fin: false }), encodeFrame(body)])
    ]
    return { bytes: this.#pick(frames)(), fatal: true }
  }

  #mutateValue (value: Record<string, unknown>): void {
    const keys = Object.keys(value)
    const roll = this.#next()
    if (roll < 0.45 && keys.length > 0) {
      const key = this.#pick(keys)
      const current = value[key]
      if (current !== null && typeof current === 'object' && !Array.isArray(current) && this.#next() < 0.5) {
        this.#mutateValue(current as Record<string, unknown>)
      } else {
        value[key] = this.#pick(NASTY(this.#pick, (n) => this.#int(n)))
      }
    } else if (roll < 0.6 && keys.length > 0) {
      Reflect.deleteProperty(value, this.#pick(keys))
    } else if (roll < 0.8) {
      value[this.#pick(FIELDS)] = this.#pick(NASTY(this.#pick, (n) => this.#int(n)))
    } else if (roll < 0.9) {
      value.type = this.#pick(TYPES)
    } else {
      // Deep nesting somewhere a parser has to walk, written into the text (JSON.stringify would recurse).
      value[this.#pick(['data', 'to', 'room', 'id'])] = `${DEEP}${100 + this.#int(20_000)}`
    }
  }

  #serialize (value: Record<string, unknown>): string {
    const text = JSON.stringify(value).replace(new RegExp(`"${DEEP}(\\d+)"`, 'g'), (_match, depth: string) => `${'['.repeat(Number(depth))}1${']'.repeat(Number(depth))}`)
    // Escapes where a parser might not expect them.
    return this.#next() < 0.1 ? text.replace(/"type"/, '"ty\\u0070e"') : text
  }

  #damage (text: string): string {
    const at = this.#int(text.length + 1)
    switch (this.#int(7)) {
      case 0: return text.slice(0, at)
      case 1: return text.slice(0, at) + this.#pick(['{', '}', '[', ']', '"', ':', ',', '\\', '\\u', '\\ud800', 'null', '-', 'e9', '\u0000', ' ']) + text.slice(at)
      case 2: return text.slice(0, at) + text.slice(at + 1 + this.#int(8))
      case 3: return text + text
      case 4: return text.slice(0, at) + text.slice(this.#int(text.length)) + text.slice(at)
      case 5: return `[${text}]`
      default: return ` \n\t${text}\r\n `
    }
  }
}

export interface FuzzOptions {
  /** Frames to send in all (sync pings not counted). */
  frames: number
  seed: number
  /** The app's `websocket.max_payload`, for frames that lie about their length. */
  maxPayload: number
  /** Frames per batch; each batch ends with a sync ping (or a frame that closes the connection). */
  batch?: number
  /** Share of batches that end with a frame that must close the connection. */
  brokenShare?: number
  /** Batches a connection gets before the client leaves and opens another (rooms per connection are bounded). */
  batchesPerConnection?: number
  /** Frames sent before the first memory sample (allocator and JIT warm-up); default a tenth of `frames`. */
  warmUp?: number
  /** Called every `progressEvery` frames with what was done so far. */
  onProgress?: (done: number, memory: MemorySample) => void
  progressEvery?: number
  /** ms to wait for one batch's answer, and for the server to drop a connection that ignores its close. */
  timeoutMs?: number
}

export interface MemorySample { rss: number, heapUsed: number }

export interface FuzzResult {
  frames: number
  connections: number
  /** Connections the server closed because of a frame, by the close code it sent. */
  closes: Record<string, number>
  /** Server frames that break the protocol's promises (at most 20 described). */
  violations: string[]
  /** Memory after a GC once warmed up (`warmUp` frames sent), and at the end. */
  start: MemorySample
  end: MemorySample
}

/** GC, then the process's memory. */
export function sampleMemory (): MemorySample {
  collectGarbage()
  const { rss, heapUsed } = process.memoryUsage()
  return { rss, heapUsed }
}

let gc: (() => void) | undefined
function collectGarbage (): void {
  if (gc === undefined) {
    v8.setFlagsFromString('--expose-gc')
    gc = vm.runInNewContext('gc') as () => void
  }
  gc()
  gc()
}

const SERVER_TYPES = new Set(['welcome', 'message', 'ack', 'error', 'pong', 'joined', 'left', 'reconnect'])
const ERROR_CODES = new Set(Object.values(ErrorCode))

/** A name the protocol accepts: 1–256 UTF-16 code units, well-formed (no lone surrogate). */
function isName (value: unknown): boolean {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_NAME_LENGTH && (value as string & { isWellFormed: () => boolean }).isWellFormed()
}

/** What is wrong with one frame the server sent, if anything. */
function checkServerFrame (payload: Buffer): string | undefined {
  let frame: Record<string, unknown>
  try {
    frame = JSON.parse(payload.toString()) as Record<string, unknown>
  } catch {
    return `not JSON: ${payload.subarray(0, 80).toString()}`
  }
  if (typeof frame.type !== 'string' || !SERVER_TYPES.has(frame.type)) return `unknown frame type ${JSON.stringify(frame.type)}`
  if (frame.type === 'error' && !ERROR_CODES.has(frame.code as ErrorCode)) return `unknown error code ${JSON.stringify(frame.code)}`
  if ((frame.type === 'joined' || frame.type === 'left') && !isName(frame.room)) return `${frame.type} a room that is not a valid name: ${JSON.stringify(frame.room).slice(0, 80)}`
  return undefined
}

/**
 * Sends `frames` mutated frames to `app` (ready, in process; `rate_limit` 0 so every frame reaches
 * the protocol) over as many connections as the broken frames close. A connection the server closes
 * is left as it is, its close unanswered: the server must drop it by itself. Throws when the server
 * stops answering or keeps a connection open that it should have closed or dropped.
 */
export async function fuzz (app: FastifyInstance, options: FuzzOptions): Promise<FuzzResult> {
  const { frames, seed, maxPayload, batch = 200, brokenShare = 0.05, batchesPerConnection = 10, warmUp = Math.floor(frames / 10), onProgress, progressEvery = 50_000, timeoutMs = 10_000 } = options
  const next = random(seed)
  const mutator = new Mutator(next, maxPayload)
  const closes: Record<string, number> = {}
  const violations: string[] = []
  const abandoned: Array<Promise<Error | undefined>> = []
  let sent = 0
  let connections = 0
  let sync = 0
  let client: RawClient | undefined
  let batches = 0
  let start: MemorySample | undefined
  let reported = 0
  const check = (frames: ServerFrame[]): void => {
    for (const frame of frames) {
      const problem = frame.opcode === Opcode.TEXT ? checkServerFrame(frame.payload) : undefined
      if (problem !== undefined && violations.length < 20) violations.push(`seed ${seed}, batch ${sync}: ${problem}`)
    }
  }
  while (sent < frames) {
    if (client === undefined) {
      client = await RawClient.open(app, `/ws?token=fuzz-${connections++}`)
      const opened = client
      await opened.until(() => opened.frames.length > 0, timeoutMs, 'welcome')
      batches = 0
    }
    const current = client
    const size = Math.min(batch, frames - sent)
    const chunks: Buffer[] = []
    let fatal = false
    for (let i = 0; i < size; i++) {
      const last = i === size - 1
      const frame = last && next() < brokenShare ? mutator.broken() : mutator.text(last)
      chunks.push(frame.bytes)
      sent++
      // Nothing after a frame that closes the connection would be read.
      if (frame.fatal) {
        fatal = true
        break
      }
    }
    const marker = `sync-${seed}-${++sync}`
    if (!fatal) chunks.push(encodeFrame(JSON.stringify({ type: 'ping', id: marker })))
    check(current.frames.splice(0))
    current.write(Buffer.concat(chunks))
    if (fatal) {
      await current.until(() => current.closeCode !== undefined, timeoutMs, `the close after a broken frame (seed ${seed}, batch ${sync})`)
      const code = String(current.closeCode)
      closes[code] = (closes[code] ?? 0) + 1
      check(current.frames)
      abandoned.push(within(current.ended, timeoutMs, `the server to drop a connection it closed with ${code} (seed ${seed}, batch ${sync})`).then(() => undefined, (err: Error) => err))
      client = undefined
    } else {
      const answered = (): boolean => current.frames.some((f) => f.opcode === Opcode.TEXT && f.payload.includes(marker))
      await current.until(() => answered() || current.closeCode !== undefined, timeoutMs, `the ack of ${marker} (seed ${seed})`)
      if (!answered()) throw new Error(`the server closed the connection (${current.closeCode}) on frames that were all valid WebSocket text (seed ${seed}, batch ${sync})`)
      if (++batches >= batchesPerConnection) {
        check(current.frames)
        current.destroy()
        client = undefined
      }
    }
    if (start === undefined && sent >= warmUp) start = sampleMemory()
    if (onProgress !== undefined && sent - reported >= progressEvery) {
      reported = sent
      onProgress(sent, sampleMemory())
    }
  }
  if (client !== undefined) {
    check(client.frames)
    client.destroy()
  }
  const kept = (await Promise.all(abandoned)).find((err) => err !== undefined)
  if (kept !== undefined) throw kept
  return { frames: sent, connections, closes, violations, start: start ?? sampleMemory(), end: sampleMemory() }
}
