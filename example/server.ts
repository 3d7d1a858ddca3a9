import type { AddressInfo } from 'node:net'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { loadConfig, type WscConfig } from 'fastify-wsc'
import { buildExampleApp } from './app.js'
import { productionRefusal } from './production.js'

const env = process.env
const port = Number(env.PORT ?? env.WSC_NODE_PORT ?? 8080)
const host = env.HOST ?? '0.0.0.0'

// What is the operator's to fix gets one line and exit code 2, no stack trace.
function refuse (line: string): never {
  console.error(line)
  process.exit(2)
}

// The image sets NODE_ENV=production: never run it with development tokens or an open /api.
const refusal = productionRefusal(env)
if (refusal !== undefined) refuse(refusal)

// The deployment's environment (REDIS_ADDR, MYSQL_URL, POD_NAME, METRICS_PORT…) and config.yaml (WSC_CONFIG).
let config: WscConfig
try {
  config = loadConfig({ env })
} catch (err) {
  refuse((err as Error).message)
}

const jwtSecret = env.WSC_JWT_SECRET
let app: FastifyInstance
try {
  app = await buildExampleApp({ jwtSecret, apiToken: env.WSC_API_TOKEN, wsc: config })
} catch (err) {
  // MySQL refused or unreachable while its schema is migrated: one line with the cause, exit 1.
  console.error(`start-up failed: ${(err as Error).message}`)
  process.exit(1)
}

// SIGTERM (a rolling deploy): drain, so clients move to other pods without losing messages, then close.
// A second signal exits at once (code 1); so does a shutdown that outlives drain.timeout.
closeWithGrace({
  delay: config.drain.timeout,
  logger: { error: (message: unknown) => app.log.error({ err: message }, 'shutdown failed') },
  onSecondSignal: (signal) => app.log.warn({ signal }, 'second signal: exiting at once'),
  onTimeout: (delay) => app.log.error({ timeoutMs: delay }, 'shutdown outlived drain.timeout: exiting')
}, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'closing after an error')
  else app.log.info({ signal }, 'closing')
  if (signal !== undefined) await app.wsc.drain()
  await app.close()
})

// Start-up either completes or exits 1 with the cause (docs/operations.md, "Start-up"): with a node id
// known before listen the node starts in onReady and listen() rejects; with one that needs the port it
// starts in onListen, and this hook (after fastify-wsc's) sees the outcome.
const startFailed = (message: string, err?: unknown): never => {
  app.log.error(err === undefined ? {} : { err }, `start-up failed: ${message}`)
  process.exit(1)
}
app.addHook('onListen', async () => {
  const failed = app.wsc.health().failed
  if (failed !== undefined) startFailed(failed)
})
try {
  await app.listen({ port, host })
} catch (err) {
  startFailed((err as Error).message, err)
}

/** A URL a browser on this machine can open for a server bound to `bound` (any address: loopback). */
function local (scheme: string, bound: string, boundPort: number, path: string): string {
  const name = bound === '0.0.0.0' || bound === '::' || bound === '' ? '127.0.0.1' : bound
  return `${scheme}://${name.includes(':') ? `[${name}]` : name}:${boundPort}${path}`
}
const listening = (app.server.address() as AddressInfo).port
const page = local('http', host, listening, '/')
const ws = local('ws', host, listening, `/ws?token=${jwtSecret === undefined || jwtSecret === '' ? '<user>' : '<jwt>'}`)
// WSC_METRICS_ENABLED=false leaves the metrics plugin out.
const metricsPort = app.hasDecorator('wscMetrics') ? app.wscMetrics.port : undefined
const metrics = metricsPort === undefined ? undefined : local('http', config.metrics.host, metricsPort, '/metrics')
app.log.info({ nodeId: app.wscIdentity.current?.nodeId ?? app.wsc.nodeId, page, ws, metrics }, `fastify-wsc example: page ${page}  ws ${ws}${metrics === undefined ? '' : `  metrics ${metrics}`}`)
