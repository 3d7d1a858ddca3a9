import closeWithGrace from 'close-with-grace'
import { buildExampleApp } from './app.js'

const env = process.env
const port = Number(env.PORT ?? env.WSC_NODE_PORT ?? 8080)
const host = env.HOST ?? '0.0.0.0'

const app = await buildExampleApp({ jwtSecret: env.WSC_JWT_SECRET, apiToken: env.WSC_API_TOKEN })

closeWithGrace({ delay: 30_000 }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'closing after an error')
  else app.log.info({ signal }, 'closing')
  await app.close()
})

await app.listen({ port, host })
app.log.info({ nodeId: app.wsc.nodeId }, `fastify-wsc example on ws://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}/ws?token=<user>`)
