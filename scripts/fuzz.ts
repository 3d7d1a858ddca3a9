/**
 * The long protocol fuzzing run: `npm run fuzz -- --frames=1000000 [--seed=N]`. The same mutated
 * frames as test/hostile/fuzz.test.ts (which sends 50,000 in CI) against an in-process app on the
 * library defaults (no rate limit, so every frame reaches the parser); prints progress and memory,
 * then the figures docs/operations.md records. Exits 1 on a crash, an error line, a protocol
 * violation or a server that stopped answering.
 */
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import wsc from '../plugins/index.js'
import { fuzz, sampleMemory, type MemorySample } from '../test/hostile/fuzzer.js'

const MAX_PAYLOAD = 64 * 1024

function option (name: string, fallback: number): number {
  const given = process.argv.slice(2).find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3)
  const value = given === undefined ? fallback : Number(given)
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer, got ${given ?? ''}`)
  return value
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`
const memory = (sample: MemorySample): string => `RSS ${mib(sample.rss)}, heap ${mib(sample.heapUsed)}`

const frames = option('frames', 1_000_000)
const seed = option('seed', 20_240_612)
let crashes = 0
let errorLines = 0
let warnLines = 0
process.on('uncaughtException', (err) => { crashes++; console.error('uncaught exception:', err) })
process.on('unhandledRejection', (err) => { crashes++; console.error('unhandled rejection:', err) })

// The server's log, counted: an error line is a failure of the server, warn lines are its refusals.
const logs = new Writable({
  write (chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString().split('\n')) {
      if (line.trim() === '') continue
      const { level, msg } = JSON.parse(line) as { level: number, msg: string }
      if (level >= 50) {
        errorLines++
        if (errorLines <= 10) console.error(`server error line: ${msg}`)
      } else if (level >= 40) warnLines++
    }
    done()
  }
})

const app = Fastify({ logger: { level: 'warn', stream: logs } })
await app.register(wsc, {
  server: { nodeId: 'fuzz' },
  metrics: { enabled: false },
  websocket: { rateLimit: 0, maxPayload: MAX_PAYLOAD },
  authenticate: (request) => ({ userId: new URL(request.url, 'http://x').searchParams.get('token') ?? 'anonymous' })
})
await app.ready()

console.log(`fuzzing ${frames.toLocaleString('en')} frames, seed ${seed}; before: ${memory(sampleMemory())}`)
const started = performance.now()
let failure: unknown
let result: Awaited<ReturnType<typeof fuzz>> | undefined
try {
  result = await fuzz(app, {
    frames,
    seed,
    maxPayload: MAX_PAYLOAD,
    progressEvery: 100_000,
    onProgress: (done, sample) => console.log(`  ${done.toLocaleString('en')} frames: ${memory(sample)}`)
  })
} catch (err) {
  failure = err
}
const seconds = (performance.now() - started) / 1000
await app.close()

if (result !== undefined) {
  console.log([
    `frames:      ${result.frames.toLocaleString('en')} in ${seconds.toFixed(0)} s over ${result.connections.toLocaleString('en')} connections`,
    `closes:      ${Object.entries(result.closes).map(([code, n]) => `${code} x${n}`).join(', ') || 'none'} (broken framing)`,
    `crashes:     ${crashes}`,
    `error lines: ${errorLines} (warn lines: ${warnLines})`,
    `violations:  ${result.violations.length}${result.violations.map((v) => `\n  ${v}`).join('')}`,
    `memory:      after ${(frames / 10).toLocaleString('en')} frames ${memory(result.start)}; at the end ${memory(result.end)}`
  ].join('\n'))
}
if (failure !== undefined) console.error('the run failed:', failure)
process.exitCode = failure !== undefined || crashes > 0 || errorLines > 0 || (result?.violations.length ?? 0) > 0 ? 1 : 0
