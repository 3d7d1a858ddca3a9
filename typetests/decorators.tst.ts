import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import wsc, { type NodeInfo, type PresenceEntry, type SendResult, type ConnectEvent, type MessageEvent, type NodeHealth, type RouterStatus, type StoreStatus, type WscMetrics } from 'fastify-wsc'

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
  expect(app.wscConfig.websocket.maxConnections).type.toBe<number>()
})
