import { test } from 'node:test'
import assert from 'node:assert/strict'
import { extractBearerToken, selectSubprotocol } from '../../lib/bearer-token.js'
import { signHs256, verifyHs256 } from '../../example/jwt.js'

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

test('HS256 JWTs: valid sub accepted; bad signature, wrong alg, expired or not-yet-valid refused', () => {
  const now = Date.now()
  const token = signHs256({ sub: 'alice', exp: now / 1000 + 60 }, 'secret')
  assert.equal(verifyHs256(token, 'secret', now), 'alice')
  assert.equal(verifyHs256(token, 'other', now), undefined)
  assert.equal(verifyHs256(signHs256({ sub: 'alice', exp: now / 1000 - 1 }, 'secret'), 'secret', now), undefined)
  assert.equal(verifyHs256(signHs256({ sub: 'alice', nbf: now / 1000 + 60 }, 'secret'), 'secret', now), undefined)
  assert.equal(verifyHs256(signHs256({ name: 'no sub' }, 'secret'), 'secret', now), undefined)
  const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"x"}').toString('base64url')}.`
  assert.equal(verifyHs256(none, 'secret', now), undefined)
  assert.equal(verifyHs256('garbage', 'secret', now), undefined)
})
