// Load generator: opens many WebSocket connections and counts what they receive. Only every
// `sampleEvery`-th connection parses frames (for latency), so the client stays cheaper than the server.
import WebSocket from 'ws'
import { now, percentile, serveCommands } from '../harness.js'

const sockets: WebSocket[] = []
let received = 0
let target = Infinity
let firstAt = 0
let lastAt = 0
let latencies: number[] = []
let done: (() => void) | undefined

function onFrame (sampled: boolean, data: WebSocket.RawData): void {
  const at = now()
  if (received === 0) firstAt = at
  received++
  lastAt = at
  if (sampled) {
    const frame = JSON.parse(data.toString()) as { type: string, data?: { t?: number } }
    if (frame.type === 'message' && typeof frame.data?.t === 'number') latencies.push(at - frame.data.t)
  }
  if (received >= target) done?.()
}

async function openOne (url: string, sampled: boolean, room: string | undefined): Promise<void> {
  const socket = new WebSocket(url, { perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    let phase: 'welcome' | 'joined' | 'live' = 'welcome'
    socket.on('message', (data) => {
      if (phase === 'live') return onFrame(sampled, data)
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
}

serveCommands({
  /** Opens `count` connections, `concurrency` at a time; returns how long it took. */
  open: async ({ base, count, concurrency, userPrefix, room, sampleEvery }) => {
    const started = now()
    const total = Number(count)
    let next = 0
    const every = Number(sampleEvery ?? 50)
    const worker = async (): Promise<void> => {
      while (next < total) {
        const i = next++
        await openOne(`${String(base)}?token=${String(userPrefix)}${i}`, i % every === 0, room === undefined ? undefined : String(room))
      }
    }
    await Promise.all(Array.from({ length: Number(concurrency ?? 50) }, worker))
    return { ms: now() - started, open: sockets.length }
  },
  /** Resolves once `total` frames arrived since the call (or after `timeoutMs`). */
  expect: async ({ total, timeoutMs }) => {
    received = 0
    latencies = []
    target = Number(total)
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Number(timeoutMs ?? 120_000))
      done = () => { clearTimeout(timer); resolve() }
    })
    done = undefined
    const sorted = latencies.sort((a, b) => a - b)
    return { received, ms: lastAt - firstAt, p50: percentile(sorted, 50), p99: percentile(sorted, 99), samples: sorted.length }
  },
  closeAll: async () => {
    await Promise.all(sockets.splice(0).map((socket) => new Promise<void>((resolve) => {
      if (socket.readyState === WebSocket.CLOSED) return resolve()
      socket.once('close', () => resolve())
      socket.terminate()
    })))
    return true
  }
})
