import Fastify, { type FastifyInstance, type FastifySchemaValidationError, type FastifyServerOptions } from 'fastify'
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

/** Seconds a caller waits before retrying a send the node could not take yet (starting, shutting down). */
const RETRY_AFTER_SECONDS = 2

const TARGETS = ['user', 'room', 'connection', 'broadcast']

/** Ajv's errors for a send body as one sentence a caller can act on, instead of every failed branch of `oneOf`. */
function sendBodyError (errors: FastifySchemaValidationError[]): Error {
  if (errors.some((e) => e.instancePath === '/to' && e.keyword === 'oneOf')) return new Error(`to must be one of ${TARGETS.join(', ')}`)
  const [first] = errors
  const path = (first?.instancePath ?? '').split('/').filter((part) => part !== '').join('.')
  if (first?.keyword === 'required') return new Error(`${path === '' ? '' : `${path}.`}${String(first.params.missingProperty)} is required`)
  if (first?.keyword === 'const') return new Error(`${path} must be ${JSON.stringify(first.params.allowedValue)}`)
  return new Error(`${path === '' ? 'body' : path} ${first?.message ?? 'is invalid'}`)
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
      // "level":"error" rather than 50, so `kubectl logs … | grep -i error` finds errors.
      formatters: { level: (label) => ({ level: label }) },
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

    // A send the node cannot take yet (starting) or any more (shutting down): a 503 the caller retries.
    api.setErrorHandler(async (err: Error & { code?: string, id?: string, seq?: number }, request, reply) => {
      // Stored, so the user gets it when its connections catch up or resume: accepted, not pushed live yet.
      if (err.code === 'WSC_ERR_STORED_NOT_DELIVERED') {
        request.log.warn({ err, statusCode: 202 }, 'message stored but not pushed live yet')
        return reply.code(202).send({ id: err.id, seq: err.seq, live: false })
      }
      if (err.code !== 'WSC_ERR_CLOSED') throw err
      const message = app.wsc.draining ? 'the node is shutting down; retry (another node takes it)' : 'the node is starting; retry shortly'
      request.log.warn({ statusCode: 503 }, message)
      return reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS))
        .send({ statusCode: 503, code: err.code, error: 'Service Unavailable', message })
    })

    api.post<{ Body: SendBody }>('/send', { schema: sendSchema, schemaErrorFormatter: sendBodyError }, async (request) => {
      const { to, data } = request.body
      // A retry with the same key stores nothing new and answers the first message's id and seq.
      const key = request.headers['idempotency-key']
      if ('user' in to) return app.wsc.sendToUser(to.user, data, typeof key === 'string' ? { id: key } : {})
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
