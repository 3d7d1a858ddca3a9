import { spawn, type ChildProcess } from 'node:child_process'
import { within } from './helper.js'

export type LogLine = Record<string, unknown> & { msg?: string }

/** A child process and the pino log lines it wrote on stdout. */
export interface ServerOutput {
  child: ChildProcess
  logs: LogLine[]
  /** What it wrote on stderr so far. */
  stderr: () => string
  /** Resolves when the process ended. */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** The first log line (already seen or to come) that `match` accepts. */
  waitForLog: (match: (line: LogLine) => boolean, ms: number, what: string) => Promise<LogLine>
}

/** A server running in a child process, as its pino logs on stdout describe it. */
export interface ServerProcess extends ServerOutput {
  /** `http://127.0.0.1:<port>` of the public port. */
  baseUrl: string
  /** `http://127.0.0.1:<port>/metrics` of the metrics port; empty for a server without one. */
  metricsUrl: string
  wsUrl: (query?: string) => string
}

/** Environment for a child: this one's, without settings that would pull in Redis, MySQL or a config file. */
function childEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const name of ['REDIS_ADDR', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES', 'MYSQL_URL', 'MYSQL_HOST', 'WSC_CONFIG', 'NODE_OPTIONS']) delete env[name]
  return { ...env, HOST: '127.0.0.1', PORT: '0', METRICS_HOST: '127.0.0.1', METRICS_PORT: '0', ...extra }
}

/** Starts `node <args>` and collects its logs; the child is killed (SIGKILL) after the test if it still runs. */
export function spawnServer (t: { after: (fn: () => void) => void }, args: string[], env: Record<string, string> = {}): ServerOutput {
  const child = spawn(process.execPath, args, { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  const logs: LogLine[] = []
  const waiters = new Set<() => void>()
  let stderr = ''
  let buffered = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    for (const text of lines) {
      if (text.trim() === '') continue
      try {
        logs.push(JSON.parse(text) as LogLine)
      } catch {
        logs.push({ msg: text })
      }
    }
    for (const wake of waiters) wake()
  })
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      resolve({ code, signal })
      for (const wake of waiters) wake()
    })
  })
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })

  const waitForLog = async (match: (line: LogLine) => boolean, ms: number, what: string): Promise<LogLine> => within((async () => {
    let seen = 0
    for (;;) {
      for (; seen < logs.length; seen++) {
        const line = logs[seen] as LogLine
        if (match(line)) return line
      }
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`server exited (${child.exitCode ?? child.signalCode}) before ${what}; stderr: ${stderr.slice(-2000)}`)
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          waiters.delete(wake)
          resolve()
        }
        waiters.add(wake)
      })
    }
  })(), ms, what)
  return { child, logs, stderr: () => stderr, exited, waitForLog }
}

/**
 * Starts `node <args>` and resolves once the public port and (unless `metrics` is false) the metrics
 * port listen. The child is killed (SIGKILL) after the test (`t.after`) if it is still running.
 */
export async function startServer (t: { after: (fn: () => void) => void }, args: string[], env: Record<string, string> = {}, { metrics = true } = {}): Promise<ServerProcess> {
  const output = spawnServer(t, args, env)
  const { waitForLog } = output
  const message = (line: LogLine): string => typeof line.msg === 'string' ? line.msg : ''
  const listening = await waitForLog((line) => /^Server listening at http:\/\/127\.0\.0\.1:\d+$/.test(message(line)), 20_000, 'the public port')
  const metricsLine = metrics ? await waitForLog((line) => /^metrics at http:\/\/127\.0\.0\.1:\d+\/metrics$/.test(message(line)), 20_000, 'the metrics port') : undefined
  const baseUrl = message(listening).replace('Server listening at ', '')
  return {
    ...output,
    baseUrl,
    metricsUrl: metricsLine === undefined ? '' : message(metricsLine).replace('metrics at ', ''),
    wsUrl: (query = '') => `${baseUrl.replace(/^http/, 'ws')}/ws${query === '' ? '' : `?${query}`}`
  }
}
