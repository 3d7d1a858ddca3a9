import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

/** A benchmark process (server or load generator) driven over IPC: `call` sends a command, awaits its reply. */
export class BenchProcess {
  readonly child: ChildProcess
  #next = 0
  readonly #pending = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void }>()

  private constructor (child: ChildProcess) {
    this.child = child
    child.on('message', (raw) => {
      const message = raw as { id: number, ok: boolean, value?: unknown, error?: string }
      const waiter = this.#pending.get(message.id)
      if (waiter === undefined) return
      this.#pending.delete(message.id)
      if (message.ok) waiter.resolve(message.value)
      else waiter.reject(new Error(message.error))
    })
    child.on('exit', (code) => {
      for (const waiter of this.#pending.values()) waiter.reject(new Error(`bench process exited with ${code}`))
      this.#pending.clear()
    })
  }

  /** Starts `bench/<file>` under tsx with --expose-gc; resolves once it answered `ready`. */
  static async start (file: string, env: Record<string, string> = {}): Promise<BenchProcess> {
    const child = fork(fileURLToPath(new URL(file, import.meta.url)), [], {
      // BENCH_CPU_PROF=dir writes a V8 CPU profile of every bench process there (see docs/performance.md).
      execArgv: ['--import', 'tsx', '--expose-gc', '--max-old-space-size=4096', ...(process.env.BENCH_TRACE_GC === undefined ? [] : ['--trace-gc']), ...(process.env.BENCH_ALLOC_PROF === undefined ? [] : ['--import', fileURLToPath(new URL('./alloc-sampling.ts', import.meta.url))]), ...(process.env.BENCH_CPU_PROF === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`])],
      env: { ...process.env, LOG_LEVEL: 'error', ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc']
    })
    const bench = new BenchProcess(child)
    await bench.call('ready', {})
    return bench
  }

  call<T = unknown> (cmd: string, args: Record<string, unknown> = {}, timeoutMs = 300_000): Promise<T> {
    const id = ++this.#next
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`${cmd} timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(id, {
        resolve: (value) => { clearTimeout(timer); resolve(value as T) },
        reject: (err) => { clearTimeout(timer); reject(err) }
      })
      this.child.send({ id, cmd, args })
    })
  }

  /** CPU seconds (user + system) the process used so far, from /proc; 0 where there is none. */
  cpuSeconds (): number {
    try {
      const stat = readFileSync(`/proc/${this.child.pid ?? 0}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name; in clock ticks (100 Hz on Linux).
      return (Number(fields[11]) + Number(fields[12])) / 100
    } catch {
      return 0
    }
  }

  /** Asks the process to exit (it then writes its CPU profile, if any); kills it after 10 s. */
  async stop (): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = once(this.child, 'exit')
    if (this.child.connected) this.child.disconnect()
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }
}

type Handler = (args: Record<string, unknown>) => unknown
/** In a bench process: answers IPC commands with the handlers given. */
export function serveCommands (handlers: Record<string, Handler>): void {
  process.on('message', (raw) => {
    const { id, cmd, args } = raw as { id: number, cmd: string, args: Record<string, unknown> }
    const handler = cmd === 'ready' ? () => true : handlers[cmd]
    Promise.resolve()
      .then(() => {
        if (handler === undefined) throw new Error(`unknown bench command ${cmd}`)
        return handler(args)
      })
      .then((value) => process.send?.({ id, ok: true, value }))
      .catch((err: unknown) => process.send?.({ id, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) }))
  })
  process.on('disconnect', () => process.exit(0))
}

/** Wall-clock ms comparable between processes on this machine (sub-ms resolution). */
export function now (): number {
  return performance.timeOrigin + performance.now()
}

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

/** Heap and RSS after full collections. */
export function memoryAfterGc (): { rss: number, heapUsed: number } {
  const gc = (globalThis as { gc?: () => void }).gc
  for (let i = 0; i < 3; i++) gc?.()
  const usage = process.memoryUsage()
  return { rss: usage.rss, heapUsed: usage.heapUsed }
}

export function yieldToLoop (): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

export interface Pace {
  /** Calls per second in total; 0 (the default): as fast as the loop and the window allow. */
  ratePerSecond?: number
  /** Without a rate, yield to the event loop every this many calls. */
  yieldEvery?: number
  /** Returned promises unsettled at once (a sliding window: the next call waits for one to settle). */
  maxInFlight?: number
}

/**
 * Calls `send(i)` for i < `count`, paced as `pace` says. Resolves with the ms taken once every returned
 * promise settled; rejects with the first rejection after that.
 */
export async function paced (count: number, pace: Pace, send: (i: number) => Promise<unknown> | unknown): Promise<number> {
  const { ratePerSecond = 0, yieldEvery = 50, maxInFlight = 200 } = pace
  const started = now()
  let inFlight = 0
  let failed: { err: unknown } | undefined
  let freed: (() => void) | undefined
  const settled = (): void => {
    inFlight--
    const wake = freed
    freed = undefined
    wake?.()
  }
  const waitBelow = async (limit: number): Promise<void> => {
    for (;;) {
      if (inFlight < limit) return
      await new Promise<void>((resolve) => { freed = resolve })
    }
  }
  for (let i = 0; i < count; i++) {
    const result = send(i)
    if (result instanceof Promise) {
      inFlight++
      result.then(settled, (err: unknown) => {
        failed ??= { err }
        settled()
      })
    }
    await waitBelow(maxInFlight)
    if (ratePerSecond > 0) {
      const wait = started + ((i + 1) * 1000) / ratePerSecond - now()
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
    } else if (i % yieldEvery === yieldEvery - 1) await yieldToLoop()
  }
  await waitBelow(1)
  if (failed !== undefined) throw failed.err
  return now() - started
}

/**
 * The `sendToUsers` command every bench server answers: `count` sends of a payload with `size` bytes of
 * padding, each to a random one of `users`, paced by `ratePerSecond` and `inFlight`; resolves with how
 * long they took. A refused send fails the run.
 */
export async function sendToRandomUsers (args: Record<string, unknown>, send: (user: string, data: { i: number, t: number, pad: string }) => Promise<unknown> | unknown): Promise<{ ms: number }> {
  const users = args.users as string[]
  const pad = 'x'.repeat(Number(args.size ?? 0))
  const pace = { ratePerSecond: Number(args.ratePerSecond ?? 0), maxInFlight: Number(args.inFlight ?? 200) }
  return { ms: await paced(Number(args.count), pace, (i) => send(users[Math.floor(Math.random() * users.length)] as string, { i, t: now(), pad })) }
}
