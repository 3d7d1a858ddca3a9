import { expect, test } from 'tstyche'
import { WscClient, type WscFailure, type WscMessage, type WscReset, type WscStatus, type WscStatusDetail, type WscWelcome } from 'fastify-wsc/client'

const client = new WscClient({ url: 'ws://127.0.0.1:8080/ws', token: 't', since: 0, epoch: 'e1' })

test('client events are typed by name', () => {
  client.on('status', (status, detail) => {
    expect(status).type.toBe<WscStatus>()
    expect(detail).type.toBe<WscStatusDetail>()
    expect(detail.failure).type.toBe<WscFailure | undefined>()
  })
  client.on('message', (message) => { expect(message).type.toBe<WscMessage>() })
  client.on('welcome', (welcome) => { expect(welcome.epoch).type.toBe<string | undefined>() })
  client.on('reset', (reset) => { expect(reset.reason).type.toBe<WscReset['reason']>() })
  expect(client.on('message', () => {})).type.toBe<() => void>()
  expect(client.on('mesage', () => {})).type.toRaiseError()
  expect(client.on('message', (m: WscWelcome) => m)).type.toRaiseError()
})

test('requests return promises; getters say where the client is', () => {
  expect(client.publish({ user: 'u2' }, { text: 'hi' })).type.toBe<Promise<void>>()
  expect(client.publish({ everyone: true }, 1)).type.toRaiseError()
  expect(client.join('lobby')).type.toBe<Promise<void>>()
  expect(client.lastSeq).type.toBe<number>()
  expect(client.epoch).type.toBe<string | undefined>()
  expect(client.failure).type.toBe<WscFailure | undefined>()
  expect(new WscClient({ url: 'ws://x/ws', since: '3' })).type.toRaiseError()
})
