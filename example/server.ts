import closeWithGrace from 'close-with-grace'
import { loadConfig, type WscConfig } from 'fastify-wsc'
import { buildExampleApp } from './app.js'

const env = process.env
const port = Number(env.PORT ?? env.WSC_NODE_PORT ?? 8080)
const host = env.HOST ?? '0.0.0.0'

// The deployment's environment (REDIS_ADDR, MYSQL_URL, POD_NAME, METRICS_PORT…) and config.yaml (WSC_CONFIG).
let config: WscConfig
try {
  config = loadConfig({ env })
} catch (err) {
  // A bad value is the operator's to fix: one line naming it, no stack trace.
  console.error((err as Error).message)
  process.exit(2)
}

const app = await buildExampleApp({ jwtSecret: env.WSC_JWT_SECRET, apiToken: env.WSC_API_TOKEN, wsc: config })

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

await app.listen({ port, host })
app.log.info({ nodeId: app.wsc.nodeId }, `fastify-wsc example on ws://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}/ws?token=<user>`)
