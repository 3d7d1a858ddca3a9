import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decodeChannelMessage, encodeProbe, encodeRoutedEvent } from '../../lib/router/routed-event-codec.js'
import type { RoutedEvent } from '../../lib/router/router.js'

const FRAME = '{"type":"message","id":"m1","seq":42,"from":"alice","to":{"user":"bob"},"data":{"text":"a\\nb"},"ts":1764201600000}'

test('a deliver crosses nodes with its seq and publishedAt in the header and the frame verbatim', () => {
  const event: RoutedEvent = { kind: 'deliver', target: { user: 'bob' }, frame: FRAME, seq: 42, publishedAt: 1764201600123 }
  const text = encodeRoutedEvent('wsc-0', event)
  const [header, ...rest] = text.split('\n')
  assert.deepEqual(JSON.parse(header ?? ''), { kind: 'deliver', origin: 'wsc-0', target: { user: 'bob' }, seq: 42, publishedAt: 1764201600123 })
  assert.equal(rest.join('\n'), FRAME)
  assert.deepEqual(decodeChannelMessage(text), { origin: 'wsc-0', event })
})

test('a deliver without seq or publishedAt (a room message; an older sender) decodes without them', () => {
  const room: RoutedEvent = { kind: 'deliver', target: { room: 'lobby' }, frame: FRAME }
  assert.deepEqual(decodeChannelMessage(encodeRoutedEvent('wsc-1', room)), { origin: 'wsc-1', event: room })
  // What a node of the previous version wrote: the header had no publishedAt.
  const old = `{"kind":"deliver","origin":"wsc-2","target":{"user":"bob"},"seq":7}\n${FRAME}`
  assert.deepEqual(decodeChannelMessage(old), { origin: 'wsc-2', event: { kind: 'deliver', target: { user: 'bob' }, frame: FRAME, seq: 7 } })
})

test('a malformed publishedAt is ignored: the message is still delivered', () => {
  for (const value of ['"1764201600123"', '1.5', 'null', '-1e400']) {
    const text = `{"kind":"deliver","origin":"wsc-0","target":{"broadcast":true},"publishedAt":${value}}\n${FRAME}`
    assert.deepEqual(decodeChannelMessage(text), { origin: 'wsc-0', event: { kind: 'deliver', target: { broadcast: true }, frame: FRAME } }, value)
  }
  const noTime: RoutedEvent = { kind: 'deliver', target: { user: 'bob' }, frame: FRAME, publishedAt: Number.NaN }
  assert.doesNotMatch(encodeRoutedEvent('wsc-0', noTime), /publishedAt/)
})

test('control events and probes round-trip; anything else is not decoded', () => {
  const events: RoutedEvent[] = [
    { kind: 'kick', userId: 'bob', code: 1008, reason: 'spam' },
    { kind: 'disconnect', connectionId: 'wsc-0~abc-1', code: 1000, reason: 'bye' },
    { kind: 'join', userId: 'bob', room: 'vip' },
    { kind: 'leave', userId: 'bob', room: 'vip' }
  ]
  for (const event of events) assert.deepEqual(decodeChannelMessage(encodeRoutedEvent('wsc-0', event)), { origin: 'wsc-0', event })
  assert.deepEqual(decodeChannelMessage(encodeProbe('wsc-0', 7)), { origin: 'wsc-0', probe: 7 })
  for (const text of ['', 'not json', '[]', '{"kind":"deliver","origin":"wsc-0","target":{"user":"bob"}}', '{"kind":"nope","origin":"wsc-0"}', '{"kind":"probe","n":1}']) {
    assert.equal(decodeChannelMessage(text), undefined, text)
  }
})

test('a batch carries its deliver headers in one line and one frame per line, in order', () => {
  const second = FRAME.replace('"seq":42', '"seq":43')
  const text = `{"kind":"batch","origin":"wsc-0","events":[{"kind":"deliver","target":{"user":"bob"},"seq":42,"publishedAt":1},{"kind":"deliver","target":{"user":"bob"},"seq":43,"prevSeq":41,"publishedAt":2}]}\n${FRAME}\n${second}`
  assert.deepEqual(decodeChannelMessage(text), {
    origin: 'wsc-0',
    events: [
      { kind: 'deliver', target: { user: 'bob' }, frame: FRAME, seq: 42, publishedAt: 1 },
      { kind: 'deliver', target: { user: 'bob' }, frame: second, seq: 43, prevSeq: 41, publishedAt: 2 }
    ]
  })
})

test('a batch whose headers and frames do not match one to one, or that holds anything but deliver events, is not decoded', () => {
  const deliver = '{"kind":"deliver","target":{"user":"bob"},"seq":42}'
  for (const text of [
    `{"kind":"batch","origin":"wsc-0","events":[${deliver},${deliver}]}\n${FRAME}`,
    `{"kind":"batch","origin":"wsc-0","events":[${deliver}]}\n${FRAME}\n${FRAME}`,
    `{"kind":"batch","origin":"wsc-0","events":[${deliver}]}`,
    '{"kind":"batch","origin":"wsc-0","events":[]}',
    `{"kind":"batch","origin":"wsc-0","events":{}}\n${FRAME}`,
    `{"kind":"batch","origin":"wsc-0","events":[{"kind":"kick","userId":"bob","code":1008,"reason":"x"}]}\n${FRAME}`,
    `{"kind":"batch","origin":"wsc-0","events":[null]}\n${FRAME}`,
    `{"kind":"batch","events":[${deliver}]}\n${FRAME}`
  ]) {
    assert.equal(decodeChannelMessage(text), undefined, text)
  }
})
