import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { WscObserver } from '../../plugins/index.js'
import { buildInProcess, capturedLogs, directMessages, noopObserver, within } from '../helper.js'

/** Whatever the event loop has queued runs first: the continuation of a promise the test just settled. */
const nextTurn = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))

test('a join whose authorizeJoin outlives the connection leaves no member and no room behind', async (t) => {
  let allow: (() => void) | undefined
  let asked: (() => void) | undefined
  const hookCalled = new Promise<void>((resolve) => { asked = resolve })
  const { app, connect } = await buildInProcess(t, {
    authorizeJoin: async () => {
      asked?.()
      await new Promise<void>((resolve) => { allow = resolve })
      return true
    }
  })
  const client = await connect('token=ada')
  const released = new Promise((resolve) => app.wsc.once('disconnect', resolve))
  client.send({ type: 'join', room: 'late', id: 'j' })
  await within(hookCalled, 5000, 'authorizeJoin to be asked')
  await client.close()
  await within(released, 5000, 'the connection to be released')
  allow?.()
  await nextTurn()
  assert.equal(app.wsc.health().connections, 0)
  assert.equal(app.wsc.health().rooms, 0, 'the room has no member left')
})

test('a connect, message or disconnect listener that throws or rejects is logged and breaks nothing', async (t) => {
  const { lines, stream } = capturedLogs()
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.after(() => process.off('unhandledRejection', onUnhandled))
  const { app, connect } = await buildInProcess(t, { authorizePublish: directMessages }, { logger: { level: 'error', stream } })
  const seen: string[] = []
  app.wsc.on('connect', () => { throw new Error('connect listener bug') })
  app.wsc.on('connect', async () => { throw new Error('async connect listener bug') })
  app.wsc.on('connect', ({ userId }) => seen.push(`connect:${userId}`))
  app.wsc.on('message', () => { throw new Error('message listener bug') })
  app.wsc.on('message', ({ id }) => seen.push(`message:${id}`))
  app.wsc.on('disconnect', () => { throw new Error('disconnect listener bug') })
  app.wsc.on('disconnect', async () => { throw new Error('async disconnect listener bug') })
  const closed = new Promise<void>((resolve) => app.wsc.on('disconnect', ({ userId }) => { seen.push(`disconnect:${userId}`); resolve() }))

  const bea = await connect('token=bea')
  bea.send({ type: 'ping' })
  await bea.next('pong')
  const cal = await connect('token=cal')
  bea.send({ type: 'publish', id: 'p-1', to: { user: 'cal' }, data: 'hi' })
  assert.deepEqual(await bea.next('ack'), { type: 'ack', id: 'p-1' }, 'the publish is acknowledged, not answered INTERNAL')
  const message = await cal.next('message')
  assert.equal(bea.frames.filter((frame) => frame.type === 'error').length, 0)
  await bea.close()
  await within(closed, 5000, 'the other disconnect listener')
  await nextTurn()

  assert.deepEqual(seen, ['connect:bea', 'connect:cal', `message:${String(message.id)}`, 'disconnect:bea'])
  const failures = lines.filter((line) => /listener failed/.test(line.msg)).map((line) => line.event)
  assert.deepEqual(failures.sort(), ['connect', 'connect', 'connect', 'connect', 'disconnect', 'disconnect', 'message'])
  assert.deepEqual(unhandled, [], 'no rejection escapes')
  await cal.close()
})

test('observers are a list: each one added sees the node\'s work, and can be removed', async (t) => {
  const { app, connect } = await buildInProcess(t)
  const counter = (): WscObserver & { frames: number } => ({
    ...noopObserver,
    frames: 0,
    frameIn () { this.frames++ }
  })
  const first = counter()
  const second = counter()
  app.wsc.observe(first)
  const removeSecond = app.wsc.observe(second)
  const client = await connect('token=dee')
  client.send({ type: 'ping' })
  await client.next('pong')
  removeSecond()
  client.send({ type: 'ping' })
  await client.next('pong')
  assert.deepEqual([first.frames, second.frames], [2, 1])
  await client.close()
})

test('app.wsc is the public API and nothing of the engine behind it', async (t) => {
  const { app } = await buildInProcess(t)
  assert.deepEqual(Object.keys(app.wsc).sort(), [
    'broadcast', 'disconnect', 'drain', 'draining', 'health', 'isOnline', 'joinRoom', 'kick', 'leaveRoom', 'nodeId', 'nodes',
    'observe', 'off', 'on', 'once', 'onlineCount', 'presence', 'routerStatus', 'sendToConnection', 'sendToRoom', 'sendToUser'
  ])
  assert.equal(Object.isFrozen(app.wsc), true)
  assert.equal(app.wsc.nodeId, 'test-node')
  assert.equal(app.wsc.on('connect', () => {}), app.wsc, 'on() chains')
})
