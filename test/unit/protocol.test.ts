import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import {
  ErrorCode, PONG_FRAME, encodeAck, encodeError, encodeJoined, encodeLeft, encodeMessage, encodeReconnect,
  encodeWelcome, parseClientFrame, serializeData
} from '../../lib/protocol.js'

test('every client frame of PROTOCOL.md parses', () => {
  assert.deepEqual(parseClientFrame('{"type":"ping"}'), { ok: true, frame: { type: 'ping' } })
  assert.deepEqual(parseClientFrame('{"type":"join","room":"r","id":"c-1"}'), { ok: true, frame: { type: 'join', room: 'r', id: 'c-1' } })
  assert.deepEqual(parseClientFrame('{"type":"leave","room":"r","id":"c-2"}'), { ok: true, frame: { type: 'leave', room: 'r', id: 'c-2' } })
  assert.deepEqual(parseClientFrame('{"type":"publish","id":"c-3","to":{"user":"u2"},"data":{"a":1}}'),
    { ok: true, frame: { type: 'publish', to: { user: 'u2' }, data: { a: 1 }, id: 'c-3' } })
  assert.deepEqual(parseClientFrame('{"type":"publish","to":{"room":"r"},"data":null}'),
    { ok: true, frame: { type: 'publish', to: { room: 'r' }, data: null } })
  assert.deepEqual(parseClientFrame('{"type":"ack","seq":42}'), { ok: true, frame: { type: 'ack', seq: 42 } })
})

test('unknown fields are ignored', () => {
  assert.deepEqual(parseClientFrame('{"type":"ping","extra":[1,2],"v":2}'), { ok: true, frame: { type: 'ping' } })
})

test('bad frames give the protocol error code and echo the id when there is one', () => {
  const cases: Array<[string, ErrorCode, unknown]> = [
    ['not json', ErrorCode.BAD_REQUEST, undefined],
    ['[1,2]', ErrorCode.BAD_REQUEST, undefined],
    ['"ping"', ErrorCode.BAD_REQUEST, undefined],
    ['null', ErrorCode.BAD_REQUEST, undefined],
    ['{"id":"x"}', ErrorCode.BAD_REQUEST, 'x'],
    ['{"type":"dance","id":"c-9"}', ErrorCode.UNKNOWN_TYPE, 'c-9'],
    ['{"type":"join","id":"c-4"}', ErrorCode.BAD_REQUEST, 'c-4'],
    ['{"type":"join","room":""}', ErrorCode.BAD_REQUEST, undefined],
    [`{"type":"join","room":"${'r'.repeat(257)}"}`, ErrorCode.BAD_REQUEST, undefined],
    ['{"type":"publish","id":7,"to":{"user":"u"}}', ErrorCode.BAD_REQUEST, 7],
    ['{"type":"publish","to":{"user":"u","room":"r"},"data":1}', ErrorCode.BAD_REQUEST, undefined],
    ['{"type":"publish","to":{"broadcast":true},"data":1}', ErrorCode.BAD_REQUEST, undefined],
    ['{"type":"publish","to":"u","data":1}', ErrorCode.BAD_REQUEST, undefined],
    ['{"type":"ack","seq":-1}', ErrorCode.BAD_REQUEST, undefined],
    ['{"type":"ack","seq":"42"}', ErrorCode.BAD_REQUEST, undefined],
    ['{"type":"ack","seq":1.5}', ErrorCode.BAD_REQUEST, undefined],
    [`{"type":"ping","id":"${'i'.repeat(129)}"}`, ErrorCode.BAD_REQUEST, undefined]
  ]
  for (const [text, code, id] of cases) {
    const result = parseClientFrame(text)
    assert.equal(result.ok, false, text)
    if (result.ok) continue
    assert.equal(result.code, code, text)
    assert.equal(result.id, id, text)
  }
})

test('parsing never throws, whatever the input', () => {
  const nested = '['.repeat(100_000) + ']'.repeat(100_000)
  const inputs = [nested, '{"type":' + '{"a":'.repeat(50_000), '\u0000\uffff', '{"__proto__":{"type":"ping"}}', '{"type":"ping","id":{"x":1}}']
  for (let i = 0; i < 2000; i++) inputs.push(randomBytes(1 + (i % 200)).toString(i % 2 === 0 ? 'latin1' : 'utf8'))
  for (const text of inputs) {
    const result = parseClientFrame(text)
    assert.equal(typeof result.ok, 'boolean')
  }
})

test('every server frame encodes as PROTOCOL.md shows it', () => {
  assert.deepEqual(JSON.parse(encodeWelcome({ nodeId: 'wsc-0', connectionId: 'c', userId: 'u1', heartbeatMs: 30000, seq: 41, epoch: 'e1', recovered: true, oldestSeq: 12 })),
    { type: 'welcome', nodeId: 'wsc-0', connectionId: 'c', userId: 'u1', heartbeatMs: 30000, seq: 41, epoch: 'e1', recovered: true, oldestSeq: 12 })
  const message = { id: 'm1', seq: 42, from: 'u2', to: { user: 'u1' }, dataJson: '{"text":"hi \\"there\\""}', ts: 1764201600000 }
  assert.deepEqual(JSON.parse(encodeMessage(message)),
    { type: 'message', id: 'm1', seq: 42, from: 'u2', to: { user: 'u1' }, data: { text: 'hi "there"' }, ts: 1764201600000 })
  const roomMessage = JSON.parse(encodeMessage({ id: 'm2', from: null, to: { room: 'r' }, dataJson: '[1]', ts: 1 }))
  assert.equal('seq' in roomMessage, false, 'seq only on user-addressed messages')
  assert.equal(roomMessage.from, null)
  assert.deepEqual(JSON.parse(encodeAck('c-1')), { type: 'ack', id: 'c-1' })
  assert.deepEqual(JSON.parse(encodeError(ErrorCode.FORBIDDEN, 'no', 'c-1')), { type: 'error', id: 'c-1', code: 'FORBIDDEN', message: 'no' })
  assert.deepEqual(JSON.parse(encodeError(ErrorCode.BAD_REQUEST, 'bad')), { type: 'error', code: 'BAD_REQUEST', message: 'bad' })
  assert.deepEqual(JSON.parse(PONG_FRAME), { type: 'pong' })
  assert.deepEqual(JSON.parse(encodeJoined('r')), { type: 'joined', room: 'r' })
  assert.deepEqual(JSON.parse(encodeLeft('r')), { type: 'left', room: 'r' })
  assert.deepEqual(JSON.parse(encodeReconnect(1500)), { type: 'reconnect', afterMs: 1500 })
})

test('serializeData refuses what JSON cannot carry and what is too large', () => {
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  assert.equal(serializeData(cyclic, 1000).ok, false)
  assert.equal(serializeData(10n, 1000).ok, false)
  assert.equal(serializeData(undefined, 1000).ok, false)
  assert.equal(serializeData(() => 1, 1000).ok, false)
  assert.equal(serializeData('x'.repeat(100), 50).ok, false)
  assert.deepEqual(serializeData({ a: [1, 'é'] }, 1000), { ok: true, json: '{"a":[1,"é"]}' })
})
