import { randomUUID } from 'node:crypto'
import { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import fp from 'fastify-plugin'
import type { WebSocket } from 'ws'
import { redactToken, selectSubprotocol } from '../lib/bearer-token.js'
import type { ClientConnection } from '../lib/client-connection.js'
import type { WscConfig } from '../lib/config.js'
import type { MessageStore } from '../lib/message-store.js'
import { MemoryMessageStore } from '../lib/memory-message-store.js'
import { MemoryRouter } from '../lib/memory-router.js'
import type { NodeIdentity } from '../lib/node-identity.js'
import { CloseCode, isValidName } from '../lib/protocol.js'
import type { Router } from '../lib/router.js'
import { WscNode, type AuthResult, type AuthorizeJoin, type AuthorizePublish } from '../lib/wsc-node.js'

/**
 * Decides who opens a connection, before the upgrade. Return the user (and rooms to join at once), or
 * null/undefined/false to refuse with 401; throw an error whose `statusCode` is 401 or 403 (for example
 * `ForbiddenError`) to refuse with that status.
 */
export type Authenticate = (request: FastifyRequest) => AuthResult | null | undefined | false | Promise<AuthResult | null | undefined | false>

/** The server-side API at `app.wsc`. */
export type Wsc = Pick<WscNode,
  'nodeId' | 'sendToUser' | 'sendToRoom' | 'sendToConnection' | 'broadcast' | 'kick' | 'disconnect' |
  'joinRoom' | 'leaveRoom' | 'isOnline' | 'presence' | 'onlineCount' | 'nodes' | 'routerStatus' | 'on' | 'once' | 'off' |
  'drain' | 'draining' | 'health' | 'observe'>

export interface WebsocketPluginOptions {
  config: WscConfig
  authenticate?: Authenticate | undefined
  authorizeJoin?: AuthorizeJoin | undefined
  authorizePublish?: AuthorizePublish | undefined
  /** Cross-node routing; default: the in-memory router (one node). */
  router?: Router | undefined
  /** User message store; default: in memory. */
  store?: MessageStore | undefined
  version: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Messaging across the cluster: send, kick, presence and connection events. */
    wsc: Wsc
  }
}

/** Seconds a refused client should wait before trying again. */
export const RETRY_AFTER_SECONDS = 5
/** How long a shutdown waits for clients to answer the close handshake before dropping them. */
const CLOSE_HANDSHAKE_GRACE_MS = 2000

interface PendingUpgrade {
  auth: AuthResult
  since: number | undefined
}

/** pino's `req` serializer with any `?token=` redacted: use it as the app logger's `serializers.req`. */
export function serializeRequest (request: FastifyRequest): { method: string, url: string, remoteAddress: string } {
  return { method: request.method, url: redactToken(request.url), remoteAddress: request.ip }
}

function isUpgrade (request: FastifyRequest): boolean {
  return request.headers.upgrade?.toLowerCase() === 'websocket'
}

function refuse (reply: FastifyReply, statusCode: number, message: string, retryAfter?: number): FastifyReply {
  if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter))
  return reply.code(statusCode).send({ statusCode, error: message })
}

export default fp<WebsocketPluginOptions>(async function websocket (fastify: FastifyInstance, opts) {
  const { config, version } = opts
  const authenticate: Authenticate = opts.authenticate ?? (() => ({ userId: `anonymous-${randomUUID()}` }))
  if (opts.authenticate === undefined) {
    fastify.log.warn('fastify-wsc: no authenticate hook given; every connection is an anonymous user')
  }
  const node = new WscNode({
    config,
    router: opts.router ?? new MemoryRouter(),
    store: opts.store ?? new MemoryMessageStore(config.store.inboxSize),
    log: fastify.log,
    version,
    authorizeJoin: opts.authorizeJoin,
    authorizePublish: opts.authorizePublish
  })
  fastify.decorate('wsc', node)

  const start = async (identity: NodeIdentity): Promise<void> => {
    await node.start({ nodeId: identity.nodeId, ip: identity.ip, port: identity.port ?? null })
  }
  const identity = fastify.wscIdentity
  if (identity.current !== undefined) {
    const known = identity.current
    fastify.addHook('onReady', async () => start(known))
  } else {
    fastify.addHook('onListen', async () => start(await identity.resolved))
  }
  fastify.addHook('onClose', async () => node.close())

  await fastify.register(fastifyWebsocket, {
    options: {
      maxPayload: config.websocket.maxPayload,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (offered) => selectSubprotocol(offered) ?? false
    },
    preClose: function (done) {
      node.closeConnections(CloseCode.GOING_AWAY, CLOSE_HANDSHAKE_GRACE_MS).then(() => done(), done)
    },
    // ws already closed the socket with the right code (1009 for an oversized frame); only log.
    errorHandler: function (error, _socket, request) {
      request.log.debug({ err: error }, 'websocket error')
    }
  })

  const pending = new WeakMap<FastifyRequest, PendingUpgrade>()
  const log = fastify.log
  const onSocketError = (err: Error): void => log.debug({ err }, 'websocket error')

  /** Wires a socket to its connection. The listeners hold the socket and the connection, not the request. */
  function attach (socket: WebSocket, connection: ClientConnection): void {
    // @fastify/websocket's own error listener keeps the upgrade request and reply alive for the
    // connection's lifetime (kilobytes per idle connection); ours only logs, as its errorHandler would.
    socket.removeAllListeners('error')
    socket.on('error', onSocketError)
    // The upgrade's ServerResponse stays assigned to the TCP socket, and through its listeners keeps
    // Fastify's request and reply alive; the upgrade answered, it has nothing left to do.
    const tcp = (socket as unknown as { _socket?: Socket & { _httpMessage?: ServerResponse | null } })._socket
    if (tcp?._httpMessage instanceof ServerResponse) tcp._httpMessage.detachSocket(tcp)
    socket.on('message', (data, isBinary) => {
      if (isBinary) {
        connection.close(CloseCode.UNSUPPORTED_DATA, 'binary frames are not supported')
        return
      }
      node.handleFrame(connection, data.toString()).catch((err: unknown) => log.error({ err }, 'frame handling failed'))
    })
    socket.on('pong', () => connection.alive())
    socket.on('close', (code) => {
      node.release(connection, code).catch((err: unknown) => log.error({ err }, 'connection release failed'))
    })
  }

  fastify.route({
    method: 'GET',
    url: config.websocket.path,
    logLevel: 'warn',
    // Tokens may travel in ?token= (browsers cannot set headers): keep them out of error logs.
    logSerializers: { req: serializeRequest },
    handler: async (_request, reply) => refuse(reply, 400, 'not a WebSocket upgrade'),
    preValidation: async (request, reply) => {
      if (!isUpgrade(request)) return
      if (!node.accepting) {
        const reason = node.draining ? 'draining' : 'not ready'
        request.log.warn({ statusCode: 503, reason }, `upgrade refused: ${reason}`)
        return refuse(reply, 503, reason, RETRY_AFTER_SECONDS)
      }
      if (node.hub.size >= config.websocket.maxConnections) {
        request.log.warn({ statusCode: 503, limit: config.websocket.maxConnections }, 'upgrade refused: max_connections')
        return refuse(reply, 503, 'too many connections', RETRY_AFTER_SECONDS)
      }
      const sinceText = (request.query as Record<string, unknown> | undefined)?.since
      let since: number | undefined
      if (sinceText !== undefined) {
        since = typeof sinceText === 'string' && /^\d{1,15}$/.test(sinceText) ? Number(sinceText) : NaN
        if (!Number.isSafeInteger(since)) return refuse(reply, 400, 'since must be a non-negative integer')
      }
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
      if (!isValidName(auth.userId) || (auth.rooms !== undefined && !auth.rooms.every(isValidName))) {
        throw new TypeError('authenticate returned a userId or rooms that are not non-empty strings of at most 256 characters')
      }
      pending.set(request, { auth, since })
    },
    wsHandler: (socket, request) => {
      const upgrade = pending.get(request)
      if (upgrade === undefined) {
        socket.close(CloseCode.INTERNAL, 'upgrade was not authenticated')
        return
      }
      pending.delete(request)
      if (!node.accepting || node.hub.size >= config.websocket.maxConnections) {
        // Lost a race with other upgrades or with shutdown between the check and the upgrade.
        socket.close(CloseCode.TRY_AGAIN_LATER, 'server full or draining')
        return
      }
      attach(socket, node.open(socket, upgrade.auth, upgrade.since))
    }
  })
}, { name: 'wsc-websocket', fastify: '5.x', dependencies: ['wsc-node-identity'] })
