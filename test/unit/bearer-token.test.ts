import { test } from 'node:test'
import assert from 'node:assert/strict'
import { extractBearerToken, redactHeaders, redactToken, selectSubprotocol } from '../../lib/bearer-token.js'
import { hs256Verifier, signHs256 } from '../../example/jwt.js'

test('the token comes from the Authorization header, a wsc.bearer subprotocol or ?token=, in that order', () => {
  assert.equal(extractBearerToken({ authorization: 'Bearer abc', protocol: 'wsc.bearer.def', url: '/ws?token=ghi' }), 'abc')
  assert.equal(extractBearerToken({ protocol: 'wsc.v1, wsc.bearer.def', url: '/ws?token=ghi' }), 'def')
  assert.equal(extractBearerToken({ url: '/ws?since=3&token=ghi' }), 'ghi')
  assert.equal(extractBearerToken({ authorization: 'Basic xyz', url: '/ws' }), undefined)
  assert.equal(extractBearerToken({ protocol: 'wsc.bearer.', url: '/ws?token=' }), undefined)
})

test('the answered subprotocol never echoes a token unless it is the only offer', () => {
  assert.equal(selectSubprotocol(['wsc.bearer.t', 'wsc.v1']), 'wsc.v1')
  assert.equal(selectSubprotocol(['wsc.bearer.t', 'chat']), 'chat')
  assert.equal(selectSubprotocol(['wsc.bearer.t']), 'wsc.bearer.t')
  assert.equal(selectSubprotocol([]), undefined)
})

test('redactToken redacts every token query parameter as authentication reads it, whatever its spelling, and nothing else', () => {
  for (const name of ['token', '%74oken', '%74%6F%6B%65%6E', 'TOKEN', 'Tok%65n']) {
    const url = `/ws?since=3&${name}=s3cr%65t&x=token`
    assert.equal(redactToken(url), `/ws?since=3&${name}=[REDACTED]&x=token`)
    if (name !== 'TOKEN' && name !== 'Tok%65n') assert.equal(extractBearerToken({ url }), 's3cret', `${name} authenticates`)
  }
  assert.equal(redactToken('/ws?token=a&token=b'), '/ws?token=[REDACTED]&token=[REDACTED]')
  assert.equal(redactToken('/?user=alice&room=token'), '/?user=alice&room=token')
  assert.equal(redactToken('/ws'), '/ws')
  assert.equal(redactToken('/ws?token'), '/ws?token', 'no value, nothing to hide')
})

test('redactHeaders hides credentials in Authorization, cookies and the wsc.bearer subprotocol, and leaves the rest', () => {
  const headers = {
    authorization: 'Bearer s3cret',
    'Proxy-Authorization': 'Basic dXNlcjpwYXNz',
    cookie: 'session=s3cret; theme=dark',
    'sec-websocket-protocol': 'wsc.v1, wsc.bearer.s3cret',
    host: 'example.com',
    'content-length': 3
  }
  assert.deepEqual(redactHeaders(headers), {
    authorization: 'Bearer [REDACTED]',
    'Proxy-Authorization': 'Basic [REDACTED]',
    cookie: 'session=[REDACTED]; theme=[REDACTED]',
    'sec-websocket-protocol': 'wsc.v1, wsc.bearer.[REDACTED]',
    host: 'example.com',
    'content-length': 3
  })
  assert.deepEqual(redactHeaders({ authorization: 's3cret', 'sec-websocket-protocol': ['WSC.BEARER.s3cret'] }), { authorization: '[REDACTED]', 'sec-websocket-protocol': ['wsc.bearer.[REDACTED]'] })
  assert.equal(headers.authorization, 'Bearer s3cret', 'the headers given are not changed')
})

test('HS256 JWTs: valid sub accepted; bad signature, wrong alg, expired or not-yet-valid refused', () => {
  const now = Date.now()
  const verify = hs256Verifier('secret', { clockTimestamp: now })
  const token = signHs256({ sub: 'alice', exp: Math.floor(now / 1000) + 60 }, 'secret')
  assert.equal(verify(token), 'alice')
  assert.equal(hs256Verifier('other', { clockTimestamp: now })(token), undefined)
  assert.equal(verify(signHs256({ sub: 'alice', exp: Math.floor(now / 1000) - 1 }, 'secret')), undefined)
  assert.equal(verify(signHs256({ sub: 'alice', nbf: Math.floor(now / 1000) + 60 }, 'secret')), undefined)
  assert.equal(verify(signHs256({ name: 'no sub' }, 'secret')), undefined)
  const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"x"}').toString('base64url')}.`
  assert.equal(verify(none), undefined)
  assert.equal(verify('garbage'), undefined)
})
