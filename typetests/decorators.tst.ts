import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import wsc, { bearer, loadConfig, type MessageStore, type NodeIdentityState, type NodeInfo, type PresenceEntry, type Router, type SendResult, type ConnectEvent, type MessageEvent, type NodeHealth, type RouterStatus, type StoreStatus, type StreamHead, type AppendOptions, type StoredMessage, type WscConfig, type WscMetrics } from 'fastify-wsc'
import health from 'fastify-wsc/health'
import metrics from 'fastify-wsc/metrics'
import mysqlStore from 'fastify-wsc/mysql-store'
import nodeIdentity from 'fastify-wsc/node-identity'
import redisRouter from 'fastify-wsc/redis-router'
import websocket from 'fastify-wsc/websocket'

const app = Fastify()

test('register accepts hooks and configuration overrides', () => {
  expect(app.register(wsc, {
    authenticate: () => ({ userId: 'u1', rooms: ['r'] }),
    authorizeJoin: ({ room }) => room.startsWith('public:'),
    websocket: { maxConnections: 10, heartbeatInterval: '10s' }
  })).type.not.toRaiseError()
  expect(app.register(wsc, { websocket: { maxConections: 10 } })).type.toRaiseError()
  expect(app.register(wsc, { authenticate: () => ({ user: 'u1' }) })).type.toRaiseError()
})

test('app.wsc sends and answers with typed results', () => {
  expect(app.wsc.sendToUser('u1', { hello: 1 })).type.toBe<Promise<SendResult>>()
  expect(app.wsc.sendToRoom('r', 'x', { from: 'u2' })).type.toBe<Promise<SendResult>>()
  expect(app.wsc.sendToConnection('c', null)).type.toBe<Promise<SendResult>>()
  expect(app.wsc.broadcast([1, 2])).type.toBe<Promise<SendResult>>()
  expect(app.wsc.kick('u1')).type.toBe<Promise<void>>()
  expect(app.wsc.disconnect('c')).type.toBe<Promise<void>>()
  expect(app.wsc.isOnline('u1')).type.toBe<Promise<boolean>>()
  expect(app.wsc.presence('u1')).type.toBe<Promise<PresenceEntry[]>>()
  expect(app.wsc.onlineCount()).type.toBe<Promise<number>>()
  expect(app.wsc.nodes()).type.toBe<Promise<NodeInfo[]>>()
  expect(app.wsc.sendToUser(42, 'x')).type.toRaiseError()
})

test('events carry typed payloads', () => {
  app.wsc.on('connect', (event) => {
    expect(event).type.toBe<ConnectEvent>()
  })
  app.wsc.on('message', (event) => {
    expect(event).type.toBe<MessageEvent>()
  })
  expect(app.wsc.on('no-such-event', () => {})).type.toRaiseError()
})

test('operations API: drain, health, router status, metrics', () => {
  expect(app.wsc.drain()).type.toBe<Promise<void>>()
  expect(app.wsc.drain({ windowMs: 1000 })).type.not.toRaiseError()
  expect(app.wsc.draining).type.toBe<boolean>()
  expect(app.wsc.health()).type.toBe<NodeHealth>()
  expect(app.wsc.routerStatus()).type.toBe<RouterStatus>()
  expect(app.wsc.health().store).type.toBe<StoreStatus | undefined>()
  expect(app.wscMetrics).type.toBe<WscMetrics>()
})

test('loadConfig turns an environment into options the plugin takes', () => {
  const config = loadConfig({ env: process.env })
  expect(config).type.toBe<WscConfig>()
  expect(config.metrics.port).type.toBe<number | undefined>()
  expect(app.register(wsc, { ...config, authenticate: bearer((token) => token) })).type.not.toRaiseError()
  expect(loadConfig({})).type.toRaiseError()
})

test('bearer hands the token to a verify function that answers a user id or the user', () => {
  expect(bearer(async (token) => token === 'x' ? 'user-x' : null)).type.not.toRaiseError()
  expect(bearer((token) => ({ userId: token, rooms: ['lobby'] }))).type.not.toRaiseError()
  expect(bearer((token) => token.length)).type.toRaiseError()
})

test('each capability registers alone, with its own slice of options', () => {
  expect(app.register(nodeIdentity, { nodeId: 'wsc-0', nodePort: 8080 })).type.not.toRaiseError()
  expect(app.register(redisRouter, { addr: '127.0.0.1:6379', prefix: 'wsc:', heartbeatInterval: '5s' })).type.not.toRaiseError()
  expect(app.register(mysqlStore, { url: 'mysql://root@127.0.0.1/wsc', retentionAge: '7d' })).type.not.toRaiseError()
  expect(app.register(websocket, { path: '/ws', maxConnections: 100, authenticate: () => null })).type.not.toRaiseError()
  expect(app.register(health, { livenessPath: '/healthz' })).type.not.toRaiseError()
  expect(app.register(metrics, { port: 9100, routeMetrics: false })).type.not.toRaiseError()
  expect(app.register(redisRouter, { adr: 'x' })).type.toRaiseError()
  expect(app.register(websocket, { maxConnections: true })).type.toRaiseError()
})

test('the decorators the plugins declare', () => {
  expect(app.wscIdentity).type.toBe<NodeIdentityState>()
  expect(app.wscRouter).type.toBe<Router>()
  expect(app.wscStore).type.toBe<MessageStore>()
  expect(app.wscRedis.prefix).type.toBe<string>()
})

test('a message store of the app\'s own can be written with the exported types', () => {
  const head = async (_userId: string): Promise<StreamHead> => ({ epoch: 'e', latestSeq: 0, oldestSeq: 0 })
  const append = async (_userId: string, message: Omit<StoredMessage, 'seq'>, _options?: AppendOptions): Promise<StoredMessage> => ({ ...message, seq: 1 })
  const store = { durability: 'memory' as const, head, append, since: async () => [], ackedSeq: async () => 0, ack: async () => {}, close: async () => {} }
  expect(store).type.toBeAssignableTo<MessageStore>()
  expect(app.register(wsc, { messageStore: store })).type.not.toRaiseError()
})
