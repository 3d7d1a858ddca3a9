/**
 * The `websocket` plugin: the `/ws` route (authentication before the upgrade, refusals as HTTP
 * answers), the node behind `app.wsc`, and its start and close.
 */
import { randomUUID } from 'node:crypto'
import { ServerResponse, STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import fp from 'fastify-plugin'
import type { WebSocket } from 'ws'
import { redactToken, selectSubprotocol } from '../lib/bearer-token.js'
import type { ClientConnection } from '../lib/node/client-connection.js'
import { resolveSection, type ConfigSectionInput, type WscConfig } from '../lib/config.js'
import type { MessageStore } from '../lib/store/message-store.js'
import { MemoryMessageStore } from '../lib/store/memory-message-store.js'
import { MemoryRouter } from '../lib/router/memory-router.js'
import type { NodeIdentity } from '../lib/node-identity.js'
import { PACKAGE_VERSION } from '../lib/package-version.js'
import { CloseCode, isValidName } from '../lib/protocol.js'
import { RedisMessageStore } from '../lib/redis/message-store.js'
import type { Router } from '../lib/router/router.js'
import type { AuthorizeJoin, AuthorizePublish } from '../lib/node/client-frames.js'
import { publicApi, type Wsc } from '../lib/node/public-api.js'
import { parseResume, type Resume } from '../lib/node/replay.js'
import { WscNode, type AuthResult } from '../lib/node/wsc-node.js'

/**
 * Decides who opens a connection, before the upgrade. Return the user (and rooms to join at once), or
 * null/undefined/false to refuse with 401; throw an error whose `statusCode` is 401 or 403 (for example
 * `ForbiddenError`) to refuse with that status.
 */
export type Authenticate = (request: FastifyRequest) => AuthResult | null | undefined | false | Promise<AuthResult | null | undefined | false>

/**
 * Options of the `websocket` plugin: the `websocket.*` keys (`path`, `maxConnections`, `maxPayload`,
 * rate limits…), the hooks, `inbox` (the bounds of the default message store) and `drain` for the defaults of
 * `app.wsc.drain()`.
 */
export interface WebsocketPluginOptions extends ConfigSectionInput<'websocket'> {
  /** Who opens a connection; runs before the upgrade. Default: every connection is an anonymous user. */
  authenticate?: Authenticate | undefined
  /** Whether a connection may join a room. Default: any room. */
  authorizeJoin?: AuthorizeJoin | undefined
  /** Whether a connection may publish. Default: only to rooms it has joined; allow `{ user }` targets here to let clients send direct messages. */
  authorizePublish?: AuthorizePublish | undefined
  /**
   * Bounds of the default store (in memory, or the Redis inbox with `redis-router`), the `store.*` keys:
   * `inboxSize`, `maxInboxBytes`, `retentionAge` (Redis), `maxUsers` and `maxBytes` (memory).
   */
  inbox?: Pick<ConfigSectionInput<'store'>, 'inboxSize' | 'maxInboxBytes' | 'retentionAge' | 'maxUsers' | 'maxBytes'> | undefined
  /** Defaults of `app.wsc.drain()`: `window`, `delay`, `reconnectJitter` (`drain.*`). */
  drain?: Pick<ConfigSectionInput<'drain'>, 'window' | 'delay' | 'reconnectJitter'> | undefined
  /** A router of your own (advanced). Default: `fastify.wscRouter` when registered, else in memory (one node). */
  router?: Router | undefined
  /** A message store of your own (advanced). Default: `fastify.wscStore` when registered, else Redis with `redis-router`, else in memory. */
  store?: MessageStore | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Messaging across the cluster: send, kick, presence and connection events. */
    wsc: Wsc
  }
  interface FastifyContextConfig {
    /** Set on fastify-wsc's own WebSocket route, so the health and metrics plugins leave the app's routes alone. */
    wscUpgrade?: boolean
  }
}

/** Seconds a refused client should wait before trying again. */
export const RETRY_AFTER_SECONDS = 5

interface PendingUpgrade {
  auth: AuthResult
  resume: Resume
}

/** pino's `req` serializer with the `token` query parameter redacted, however it is spelled (`?%74oken=`): use it as the app logger's `serializers.req`. */
export function serializeRequest (request: FastifyRequest): { method: string, url: string, remoteAddress: string } {
  return { method: request.method, url: redactToken(request.url), remoteAddress: request.ip }
}

function isUpgrade (request: FastifyRequest): boolean {
  return request.headers.upgrade?.toLowerCase() === 'websocket'
}

/** Refuses an upgrade with an HTTP answer in Fastify's error shape. */
function refuse (reply: FastifyReply, statusCode: number, message: string, retryAfter?: number): FastifyReply {
  if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter))
  return reply.code(statusCode).send({ statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message })
}

/** The store used when none is registered: the router's Redis when there is one, else memory. */
function defaultStore (fastify: FastifyInstance, limits: WscConfig['store']): MessageStore {
  const { inboxSize, maxInboxBytes, retentionAge, maxUsers, maxBytes } = limits
  if (fastify.hasDecorator('wscRedis')) return new RedisMessageStore(fastify.wscRedis.commands, { prefix: fastify.wscRedis.prefix, inboxSize, maxInboxBytes, retentionAge })
  return new MemoryMessageStore({ inboxSize, maxInboxBytes, maxUsers, maxBytes })
}

/**
 * The container port behind the Ingress: the `/ws` route and `app.wsc`. Uses the `wscRouter` and
 * `wscStore` registered before it (decorating in-memory ones when there are none), starts the node
 * under `wscIdentity` once the app is ready (or listens, when the id needs the port), and reuses the
 * app's `@fastify/websocket` when it has one.
 */
async function registerWebsocket (fastify: FastifyInstance, opts: WebsocketPluginOptions): Promise<void> {
  const { authenticate: givenAuthenticate, authorizeJoin, authorizePublish, inbox, drain, router: givenRouter, store: givenStore, ...websocketOptions } = opts
  const config = resolveSection('websocket', websocketOptions, 'wsc-websocket')
  const limits = resolveSection('store', inbox, 'wsc-websocket')
  const drainDefaults = resolveSection('drain', drain, 'wsc-websocket')
  const authenticate: Authenticate = givenAuthenticate ?? (() => ({ userId: `anonymous-${randomUUID()}` }))
  if (givenAuthenticate === undefined) {
    fastify.log.warn('fastify-wsc: no authenticate hook given; every connection is an anonymous user')
  }
  const router: Router = givenRouter ?? (fastify.hasDecorator('wscRouter') ? fastify.wscRouter : new MemoryRouter())
  const ownsStore = givenStore === undefined && !fastify.hasDecorator('wscStore')
  const store = givenStore ?? (ownsStore ? defaultStore(fastify, limits) : fastify.wscStore)
  if (!fastify.hasDecorator('wscRouter')) fastify.decorate('wscRouter', router)
  if (!fastify.hasDecorator('wscStore')) fastify.decorate('wscStore', store)

  const node = new WscNode({
    websocket: config,
    drain: drainDefaults,
    router,
    store,
    log: fastify.log,
    version: PACKAGE_VERSION,
    authorizeJoin,
    authorizePublish
  })
  fastify.decorate('wsc', publicApi(node))

  const identity = fastify.wscIdentity
  const start = async (known: NodeIdentity): Promise<void> => {
    await node.start({ nodeId: known.nodeId, ip: known.ip, port: () => identity.current?.port ?? null })
  }
  if (identity.current !== undefined) {
    const known = identity.current
    fastify.addHook('onReady', async () => start(known))
    // The port comes from the listen port: the entry written at start had none, so write it once known.
    if (known.port === undefined) {
      fastify.addHook('onListen', async () => {
        await router.refreshNode?.().catch((err: unknown) => fastify.log.warn({ err }, 'node registry: could not record the listen port before the next heartbeat'))
      })
    }
  } else {
    // After listen() resolved: a failure can only be reported, and the node stays failed (`/health` 503).
    fastify.addHook('onListen', async () => {
      try {
        await start(await identity.resolved)
      } catch (err) {
        fastify.log.error({ err }, `fastify-wsc did not start: ${(err as Error).message}`)
      }
    })
  }
  fastify.addHook('onClose', async () => {
    await node.close()
    if (ownsStore) await store.close()
  })

  // The app's own @fastify/websocket is reused: its server settings stay, ours apply per connection.
  const sharedServer = fastify.hasDecorator('websocketServer')
  if (sharedServer) {
    fastify.addHook('preClose', async () => node.closeConnections(CloseCode.GOING_AWAY))
  } else {
    await fastify.register(fastifyWebsocket, {
      options: {
        maxPayload: config.maxPayload,
        perMessageDeflate: false,
        clientTracking: false,
        handleProtocols: (offered) => selectSubprotocol(offered) ?? false
      },
      preClose: function (done) {
        node.closeConnections(CloseCode.GOING_AWAY).then(() => done(), done)
      },
      // ws already closed the socket with the right code (1009 for an oversized frame); only log.
      errorHandler: function (error, _socket, request) {
        request.log.debug({ err: error }, 'websocket error')
      }
    })
  }

  const pending = new WeakMap<FastifyRequest, PendingUpgrade>()
  const log = fastify.log

  /**
   * The socket listeners, one set for every connection: `this` is the socket, its connection is
   * found under a symbol, so an idle connection carries no closure of its own.
   */
  function onError (this: WebSocket, err: Error & { code?: string }): void {
    const connection = connectionOf(this)
    const code = protocolErrorCode(err.code)
    // ws closed the connection for a protocol error: the client has close_timeout to answer.
    if (code !== undefined) connection.closedWith(code)
    if (connection.firstReport('websocket error')) log.debug({ err, connectionId: connection.id }, 'websocket error')
  }
  function onMessage (this: WebSocket, data: Buffer, isBinary: boolean): void {
    const connection = connectionOf(this)
    if (isBinary) node.frames.refuseBinary(connection)
    else node.frames.handle(connection, data.toString()).catch((err: unknown) => log.error({ err }, 'frame handling failed'))
  }
  function onPong (this: WebSocket): void {
    connectionOf(this).alive()
  }
  function onClose (this: WebSocket, code: number): void {
    node.release(connectionOf(this), code).catch((err: unknown) => log.error({ err }, 'connection release failed'))
  }

  /** Wires a socket to its connection. The listeners hold the socket and the connection, not the request. */
  function attach (socket: WebSocket, connection: ClientConnection): void {
    (socket as SocketWithConnection)[CONNECTION] = connection
    // @fastify/websocket's own error listener keeps the upgrade request and reply alive for the
    // connection's lifetime (kilobytes per idle connection); ours notes the close ws sent and logs once.
    socket.removeAllListeners('error')
    socket.on('error', onError)
    // The upgrade's ServerResponse stays assigned to the TCP socket, and through its listeners keeps
    // Fastify's request and reply alive; the upgrade answered, it has nothing left to do.
    const tcp = (socket as unknown as { _socket?: Socket & { _httpMessage?: ServerResponse | null } })._socket
    if (tcp?._httpMessage instanceof ServerResponse) tcp._httpMessage.detachSocket(tcp)
    if (sharedServer) limitPayload(socket, config.maxPayload)
    socket.on('message', onMessage)
    socket.on('pong', onPong)
    socket.on('close', onClose)
  }

  fastify.route({
    method: 'GET',
    url: config.path,
    logLevel: 'warn',
    // Tokens may travel in ?token= (browsers cannot set headers): keep them out of error logs.
    logSerializers: { req: serializeRequest },
    config: { wscUpgrade: true },
    handler: async (_request, reply) => refuse(reply, 400, 'not a WebSocket upgrade'),
    preValidation: async (request, reply) => {
      if (!isUpgrade(request)) return
      // A node whose id needs the listen port starts after listen(): wait for it as long as a client would be told to.
      if (!node.accepting) await node.afterStart(RETRY_AFTER_SECONDS * 1000)
      if (!node.accepting) {
        const reason = node.draining ? 'draining' : 'not ready'
        request.log.warn({ statusCode: 503, reason }, `upgrade refused: ${reason}`)
        return refuse(reply, 503, reason, RETRY_AFTER_SECONDS)
      }
      if (node.hub.size >= config.maxConnections) {
        request.log.warn({ statusCode: 503, limit: config.maxConnections }, 'upgrade refused: max_connections')
        return refuse(reply, 503, 'too many connections', RETRY_AFTER_SECONDS)
      }
      const resume = parseResume(request.query as Record<string, unknown> | undefined)
      if (typeof resume === 'string') return refuse(reply, 400, resume)
      let auth: AuthResult | null | undefined | false
      try {
        auth = await authenticate(request)
      } catch (err) {
        const statusCode = (err as { statusCode?: number }).statusCode
        if (statusCode === 401 || statusCode === 403) {
          request.log.warn({ statusCode }, 'upgrade refused by authenticate')
          return refuse(reply, statusCode, (err as Error).message || (statusCode === 401 ? 'unauthorized' : 'forbidden'))
        }
        throw err
      }
      if (auth === null || auth === undefined || auth === false) {
        request.log.warn({ statusCode: 401 }, 'upgrade refused: no credentials')
        return refuse(reply, 401, 'unauthorized')
      }
      if (!isValidName(auth.userId) || (auth.rooms !== undefined && (!Array.isArray(auth.rooms) || !auth.rooms.every(isValidName)))) {
        // An identity the protocol cannot carry (too long, not well-formed UTF-16): the credentials are bad.
        const what = isValidName(auth.userId) ? 'rooms' : 'userId'
        request.log.warn({ statusCode: 401, invalid: what }, `upgrade refused: authenticate returned an invalid ${what}`)
        return refuse(reply, 401, 'unauthorized')
      }
      pending.set(request, { auth, resume })
    },
    wsHandler: (socket, request) => {
      const upgrade = pending.get(request)
      if (upgrade === undefined) {
        socket.close(CloseCode.INTERNAL, 'upgrade was not authenticated')
        return
      }
      pending.delete(request)
      if (!node.accepting || node.hub.size >= config.maxConnections) {
        // Lost a race with other upgrades or with shutdown between the check and the upgrade.
        socket.close(CloseCode.TRY_AGAIN_LATER, 'server full or draining')
        return
      }
      attach(socket, node.open(socket, upgrade.auth, upgrade.resume))
    }
  })
}

/** Where a socket keeps its connection, for the listeners every connection shares. */
const CONNECTION = Symbol('wsc connection')
type SocketWithConnection = WebSocket & { [CONNECTION]?: ClientConnection }

function connectionOf (socket: WebSocket): ClientConnection {
  return (socket as SocketWithConnection)[CONNECTION] as ClientConnection
}

/**
 * The close code ws sent for a frame it refused (its `WS_ERR_*` error codes): 1007 bad UTF-8, 1009 too
 * big, 1008 too many fragments, 1002 any other protocol error; undefined for an error of another kind.
 */
function protocolErrorCode (code: string | undefined): number | undefined {
  switch (code) {
    case 'WS_ERR_INVALID_UTF8': return CloseCode.INVALID_DATA
    case 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH':
    case 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH': return CloseCode.TOO_BIG
    case 'WS_ERR_TOO_MANY_BUFFERED_PARTS': return CloseCode.POLICY
    default: return code?.startsWith('WS_ERR_') === true ? CloseCode.PROTOCOL_ERROR : undefined
  }
}

/**
 * On a ws server of the app's, whose `maxPayload` may be larger than ours (ws defaults to 100 MiB), the
 * frame limit is set on the connection's own receiver, so an oversized frame still closes it with 1009.
 */
function limitPayload (socket: WebSocket, maxPayload: number): void {
  const receiver = (socket as unknown as { _receiver?: { _maxPayload?: number } })._receiver
  if (receiver !== undefined && typeof receiver._maxPayload === 'number' && (receiver._maxPayload === 0 || receiver._maxPayload > maxPayload)) {
    receiver._maxPayload = maxPayload
  }
}

/** The `websocket` plugin (`wsc-websocket`): the `/ws` route, decorates `fastify.wsc` (and `wscRouter`/`wscStore` when absent). */
export const websocket = fp(registerWebsocket, { name: 'wsc-websocket', fastify: '5.x', dependencies: ['wsc-node-identity'] })
export default websocket
