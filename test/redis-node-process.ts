/**
 * A fastify-wsc node as its own process, configured from the environment (NODE_ID, REDIS_ADDR,
 * WSC_REDIS_PREFIX, WSC_NODE_HEARTBEAT_INTERVAL): what a pod runs. Prints `listening <port>` when ready.
 * Tokens are user ids. Used by tests that kill a node with a real signal.
 */
import Fastify from 'fastify'
import wsc, { loadConfig } from '../plugins/index.js'

const app = Fastify({ logger: false })
await app.register(wsc, {
  ...loadConfig({ env: process.env }),
  authenticate: (request) => {
    const token = new URL(request.url, 'http://x').searchParams.get('token')
    return token === null ? null : { userId: token }
  }
})
await app.listen({ port: 0, host: '127.0.0.1' })
const { port } = app.server.address() as { port: number }
process.stdout.write(`listening ${port}\n`)
process.once('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
