import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import wsc, { bearer, redactToken, serializeRequest, type WscOptions } from 'fastify-wsc'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { hs256Verifier } from './jwt.js'
import { demoPage } from './page.js'

// The browser client as the package publishes it (dist/client/wsc-client.js).
const clientScript = createRequire(import.meta.url).resolve('fastify-wsc/client')

export interface ExampleOptions {
  /** HS256 secret; unset: development mode, the bearer token is the user id. */
  jwtSecret?: string | undefined
  /** When set, /api/* requires `Authorization: Bearer <apiToken>`. */
  apiToken?: string | undefined
  /** fastify-wsc's options; the example server passes `loadConfig({ env: process.env })`. */
  wsc?: WscOptions
  fastify?: FastifyServerOptions
}

interface SendBody {
  to: { user: string } | { room: string } | { connection: string } | { broadcast: true }
  data: unknown
}

const sendSchema = {
  body: {
    type: 'object',
    required: ['to', 'data'],
    properties: {
      to: {
        type: 'object',
        // Exactly one target kind; oneOf (not additionalProperties) because Fastify's Ajv strips extras.
        oneOf: [{ required: ['user'] }, { required: ['room'] }, { required: ['connection'] }, { required: ['broadcast'] }],
        properties: {
          user: { type: 'string', minLength: 1, maxLength: 256 },
          room: { type: 'string', minLength: 1, maxLength: 256 },
          connection: { type: 'string', minLength: 1, maxLength: 256 },
          broadcast: { const: true }
        }
      },
      data: {}
    }
  }
}

/** The example app: fastify-wsc with token auth, a send API, presence and node listing. */
export async function buildExampleApp (options: ExampleOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: process.env.LOG_LEVEL ?? 'info',
      // Browsers send the token in ?token= on any path they try: never log it.
      serializers: { req: serializeRequest }
    },
    ...options.fastify
  })
  const { jwtSecret, apiToken } = options
  // Fastify's own 404 handler logs the URL, token and all.
  app.setNotFoundHandler(async (request, reply) => {
    const message = `Route ${request.method}:${redactToken(request.url)} not found`
    request.log.info({ statusCode: 404 }, message)
    return reply.code(404).send({ statusCode: 404, error: 'Not Found', message })
  })

  // In development the token is the user id; with a secret, an HS256 JWT whose `sub` is the user id.
  const verify = jwtSecret === undefined || jwtSecret === '' ? (token: string) => token : hs256Verifier(jwtSecret)
  await app.register(wsc, {
    ...options.wsc,
    // The dashboards also chart request durations on the public port.
    metrics: { ...options.wsc?.metrics, routeMetrics: true },
    authenticate: bearer(verify),
    // The demo page sends direct messages: clients may publish to any user, and to rooms they joined.
    authorizePublish: ({ to, rooms }) => 'user' in to || rooms.has(to.room)
  })

  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(demoPage))
  app.get('/client.js', async (_request, reply) => reply.type('text/javascript; charset=utf-8').send(await readFile(clientScript)))

  await app.register(async function api (api) {
    if (apiToken !== undefined && apiToken !== '') {
      api.addHook('onRequest', async (request, reply) => {
        if (request.headers.authorization !== `Bearer ${apiToken}`) {
          return reply.code(401).send({ statusCode: 401, error: 'unauthorized' })
        }
      })
    }

    api.post<{ Body: SendBody }>('/send', { schema: sendSchema }, async (request) => {
      const { to, data } = request.body
      if ('user' in to) return app.wsc.sendToUser(to.user, data)
      if ('room' in to) return app.wsc.sendToRoom(to.room, data)
      if ('connection' in to) return app.wsc.sendToConnection(to.connection, data)
      return app.wsc.broadcast(data)
    })

    api.get<{ Params: { user: string } }>('/presence/:user', async (request) => {
      const connections = await app.wsc.presence(request.params.user)
      return { user: request.params.user, online: connections.length > 0, connections }
    })

    api.get('/nodes', async () => ({ nodes: await app.wsc.nodes() }))
  }, { prefix: '/api' })

  return app
}
