import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ClientConnection, type ConnectionSettings, type WireSocket } from '../../lib/node/client-connection.js'
import { LocalHub, TIMED_RECIPIENTS } from '../../lib/node/hub.js'
import { CORK_BYTES } from '../../lib/node/write-turns.js'

/** A socket that records what it was given; `flush` completes pending writes like the kernel would. */
class RecordingSocket implements WireSocket {
  readyState = 1
  bufferedAmount = 0
  readonly sent: Buffer[] = []
  readonly callbacks: Array<() => void> = []
  closed: { code: number, reason: string } | undefined
  send (data: Buffer, options: { binary: boolean }, cb: () => void): void {
    assert.equal(options.binary, false)
    this.sent.push(data)
    this.callbacks.push(cb)
  }

  flush (): void {
    for (const cb of this.callbacks.splice(0)) cb()
  }

  ping (): void {}
  close (code: number, reason: string): void {
    this.closed = { code, reason }
    this.readyState = 2
  }

  terminate (): void {
    this.readyState = 3
  }

  pause (): void {}
}

function settings (overrides: Partial<ConnectionSettings> = {}): ConnectionSettings {
  return { messageBufferSize: 10, maxBufferedBytes: 1 << 20, closeTimeout: 1000, rateLimit: 0, rateBurst: 1, onOverflow: () => {}, onSeqGap: () => {}, ...overrides }
}

function connect (hub: LocalHub, id: string, userId: string, s = settings()): { connection: ClientConnection, socket: RecordingSocket } {
  const socket = new RecordingSocket()
  const connection = new ClientConnection(id, userId, socket, s)
  hub.add(connection)
  return { connection, socket }
}

test('a fan-out serializes the frame once: every recipient gets the same buffer', () => {
  const hub = new LocalHub()
  const members = Array.from({ length: 50 }, (_, i) => connect(hub, `c${i}`, `u${i}`))
  for (const { connection } of members) hub.join(connection, 'lobby')
  assert.equal(hub.deliver({ room: 'lobby' }, '{"type":"message"}'), 50)
  const first = members[0]?.socket.sent[0]
  assert.ok(first !== undefined)
  for (const { socket } of members) assert.equal(socket.sent[0], first, 'the same Buffer instance')
})

test('connections are found by id, by user (all devices) and by room; rooms empty out', () => {
  const hub = new LocalHub()
  const a1 = connect(hub, 'a1', 'alice').connection
  const a2 = connect(hub, 'a2', 'alice').connection
  const b1 = connect(hub, 'b1', 'bob').connection
  assert.equal(hub.get('b1'), b1)
  assert.deepEqual([...hub.user('alice')], [a1, a2])
  assert.equal(hub.join(a1, 'r'), true, 'first local member')
  assert.equal(hub.join(b1, 'r'), false)
  assert.equal(hub.deliver({ user: 'alice' }, '{}'), 2)
  assert.equal(hub.deliver({ connection: 'a2' }, '{}'), 1)
  assert.equal(hub.deliver({ broadcast: true }, '{}'), 3)
  assert.equal(hub.deliver({ room: 'nobody' }, '{}'), 0)
  assert.equal(hub.leave(a1, 'r'), false)
  assert.deepEqual(hub.remove(b1), ['r'], 'removing the last member empties the room')
  assert.equal(hub.remove(b1), undefined, 'removing twice is a no-op')
  assert.equal(hub.roomCount, 0)
  assert.equal(hub.size, 2)
})

test('a full send buffer closes only that connection with 1013', () => {
  const hub = new LocalHub()
  let overflows = 0
  const s = settings({ messageBufferSize: 3, onOverflow: () => overflows++ })
  const slow = connect(hub, 'slow', 's', s)
  const fast = connect(hub, 'fast', 'f', s)
  for (let i = 0; i < 5; i++) {
    hub.deliver({ broadcast: true }, `{"n":${i}}`)
    fast.socket.flush()
  }
  assert.equal(fast.socket.sent.length, 5)
  assert.equal(fast.socket.closed, undefined)
  assert.equal(slow.socket.sent.length, 3)
  assert.equal(slow.socket.closed?.code, 1013)
  assert.equal(overflows, 1)
})

test('the byte cap on bufferedAmount closes with 1013 too', () => {
  const hub = new LocalHub()
  const { connection, socket } = connect(hub, 'c', 'u', settings({ maxBufferedBytes: 1024 }))
  socket.bufferedAmount = 1000
  assert.equal(connection.write(Buffer.alloc(100)), false)
  assert.equal(socket.closed?.code, 1013)
})

test('frames held during a replay count against the byte cap with what the socket buffers: past it, 1013', () => {
  const hub = new LocalHub()
  let overflows = 0
  const { connection, socket } = connect(hub, 'c', 'u', settings({ messageBufferSize: 1000, maxBufferedBytes: 1024, onOverflow: () => overflows++ }))
  connection.beginReplay()
  socket.bufferedAmount = 500
  const frame = 'x'.repeat(100)
  for (let i = 0; i < 5; i++) assert.equal(connection.deliver(Buffer.from(frame)), true, `frame ${i} is held (${500 + (i + 1) * 100} bytes)`)
  assert.equal(socket.closed?.code, undefined, 'still open')
  assert.equal(connection.deliver(Buffer.from(frame)), false, '500 buffered, 500 held and this 100 would pass 1024')
  assert.equal(socket.closed?.code, 1013)
  assert.equal(overflows, 1)
  assert.equal(connection.deliver(Buffer.from(frame)), false, 'nothing more is held')
})

test('frames routed during set-up are held; replayed user messages are not sent twice', () => {
  const hub = new LocalHub()
  const { connection, socket } = connect(hub, 'c', 'u')
  connection.beginReplay()
  hub.deliver({ user: 'u' }, '{"seq":5}', 5)
  hub.deliver({ room: 'r' }, '{"room":1}')
  connection.write(Buffer.from('{"welcome":1}'))
  hub.deliver({ user: 'u' }, '{"seq":7}', 7)
  assert.deepEqual(socket.sent.map(String), ['{"welcome":1}'])
  connection.endReplay(6)
  assert.deepEqual(socket.sent.map(String), ['{"welcome":1}', '{"seq":7}'])
  hub.deliver({ user: 'u' }, '{"seq":4}', 4)
  hub.deliver({ user: 'u' }, '{"seq":8}', 8)
  assert.deepEqual(socket.sent.map(String), ['{"welcome":1}', '{"seq":7}', '{"seq":8}'])
})

test('user messages go out in seq order: a seq gap in live traffic is read from the store before what follows', () => {
  const hub = new LocalHub()
  const gaps: number[] = []
  const { connection, socket } = connect(hub, 'c', 'u', settings({ onSeqGap: (_connection, afterSeq) => gaps.push(afterSeq) }))
  hub.join(connection, 'r')
  connection.beginReplay()
  connection.endReplay(6)
  hub.deliver({ user: 'u' }, '{"seq":7}', 7)
  // 8 is still on its way from another node: 9 waits, and so does everything routed meanwhile.
  hub.deliver({ user: 'u' }, '{"seq":9}', 9)
  hub.deliver({ room: 'r' }, '{"room":1}')
  hub.deliver({ user: 'u' }, '{"seq":8}', 8)
  assert.deepEqual(gaps, [7], 'the gap after 7 is read from the store')
  assert.deepEqual(socket.sent.map(String), ['{"seq":7}'])
  // The gap replay wrote 8 and 9 from the store; the live copies are not sent again.
  connection.write(Buffer.from('{"seq":8,"replayed":1}'))
  connection.write(Buffer.from('{"seq":9,"replayed":1}'))
  connection.endReplay(9)
  hub.deliver({ user: 'u' }, '{"seq":10}', 10)
  assert.deepEqual(socket.sent.map(String), ['{"seq":7}', '{"seq":8,"replayed":1}', '{"seq":9,"replayed":1}', '{"room":1}', '{"seq":10}'])
})

test('held user messages are released in seq order; a gap among them starts another store read', () => {
  const hub = new LocalHub()
  const gaps: number[] = []
  const { connection, socket } = connect(hub, 'c', 'u', settings({ onSeqGap: (_connection, afterSeq) => gaps.push(afterSeq) }))
  connection.beginReplay()
  for (const seq of [3, 1, 2, 6]) hub.deliver({ user: 'u' }, `{"seq":${seq}}`, seq)
  connection.endReplay(0)
  assert.deepEqual(socket.sent.map(String), ['{"seq":1}', '{"seq":2}', '{"seq":3}'])
  assert.deepEqual(gaps, [3])
  // The store read found 4 and nothing else up to 6 (the seq jumped): 6 goes out after it, a late live
  // copy of 4 is not sent twice, and a 5 the store never had cannot come after 6.
  connection.write(Buffer.from('{"seq":4,"replayed":1}'))
  hub.deliver({ user: 'u' }, '{"seq":4}', 4)
  connection.endReplay(4)
  hub.deliver({ user: 'u' }, '{"seq":5}', 5)
  assert.deepEqual(socket.sent.map(String), ['{"seq":1}', '{"seq":2}', '{"seq":3}', '{"seq":4,"replayed":1}', '{"seq":6}'])
  assert.deepEqual(gaps, [3])
})

test('whenWritable resolves when the buffer drains below half, false when the connection closes', async () => {
  const hub = new LocalHub()
  const { connection, socket } = connect(hub, 'c', 'u', settings({ messageBufferSize: 4 }))
  for (let i = 0; i < 4; i++) connection.write(Buffer.from('x'))
  const writable = connection.whenWritable()
  socket.flush()
  assert.equal(await writable, true)
  for (let i = 0; i < 4; i++) connection.write(Buffer.from('x'))
  const closing = connection.whenWritable()
  connection.markClosed()
  assert.equal(await closing, false)
})

test('a fan-out times the first few recipients only; one-to-one deliveries are always timed', () => {
  const hub = new LocalHub()
  let timed = 0
  const s = settings({ onDelivered: () => timed++ })
  const members = Array.from({ length: 20 }, (_, i) => connect(hub, `c${i}`, `u${i}`, s))
  for (const { connection } of members) hub.join(connection, 'big')
  hub.deliver({ room: 'big' }, '{"n":1}')
  for (const { socket } of members) socket.flush()
  assert.equal(timed, TIMED_RECIPIENTS)
  hub.deliver({ user: 'u3' }, '{"n":2}')
  members[3]?.socket.flush()
  assert.equal(timed, TIMED_RECIPIENTS + 1)
})

test('the frames one turn writes to one socket after its first leave corked, in one write at the end of the turn', async () => {
  const hub = new LocalHub()
  const { connection, socket } = connect(hub, 'c1', 'u1')
  const other = connect(hub, 'c2', 'u2')
  const calls: string[] = []
  Object.assign(socket, { _socket: { cork: () => calls.push('cork'), uncork: () => calls.push('uncork'), writableLength: 0 } })
  Object.assign(other.socket, { _socket: { cork: () => calls.push('other cork'), uncork: () => calls.push('other uncork'), writableLength: 0 } })
  await new Promise((resolve) => setImmediate(resolve))
  connection.write(Buffer.from('1'))
  other.connection.write(Buffer.from('a'))
  assert.deepEqual(calls, [], 'a first frame in a turn goes out at once')
  connection.write(Buffer.from('2'))
  connection.write(Buffer.from('3'))
  assert.deepEqual(calls, ['cork'], 'the second corks the socket, once')
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(calls, ['cork', 'uncork'], 'uncorked when the turn ended; the other socket was never corked')
  connection.write(Buffer.from('4'))
  assert.deepEqual(calls, ['cork', 'uncork'], 'the next turn starts uncorked')
  assert.equal(socket.sent.length, 4)
})

test('a corked socket writes out what it holds once that reaches CORK_BYTES, and stays corked for the rest of the turn', async () => {
  const hub = new LocalHub()
  const { connection, socket } = connect(hub, 'c1', 'u1')
  const calls: string[] = []
  const tcp = { writableLength: 0, cork: () => calls.push('cork'), uncork: () => { calls.push('uncork'); tcp.writableLength = 0 } }
  Object.assign(socket, { _socket: tcp })
  const frame = Buffer.alloc(CORK_BYTES / 4)
  socket.send = (data) => { socket.sent.push(data); if (calls.length > 0) tcp.writableLength += data.length }
  await new Promise((resolve) => setImmediate(resolve))
  for (let i = 0; i < 4; i++) connection.write(frame)
  assert.deepEqual(calls, ['cork'], 'the first frame left at once, three are held: below the bound')
  connection.write(frame)
  assert.deepEqual(calls, ['cork', 'uncork', 'cork'], 'the fourth held frame reached the bound: written out, corked again')
  assert.equal(tcp.writableLength, 0)
  for (let i = 0; i < 3; i++) connection.write(frame)
  assert.deepEqual(calls, ['cork', 'uncork', 'cork'], 'held again, below the bound')
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(calls, ['cork', 'uncork', 'cork', 'uncork'], 'uncorked when the turn ended')
})
