import { test } from 'node:test'
import assert from 'node:assert/strict'
import { firstExternalIPv4, resolveNodeIdentity } from '../../lib/node-identity.js'

const interfaces = {
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4' as const, mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  eth0: [
    { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6' as const, mac: '02:00:00:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 },
    { address: '10.244.1.5', netmask: '255.255.255.0', family: 'IPv4' as const, mac: '02:00:00:00:00:01', internal: false, cidr: '10.244.1.5/24' }
  ]
}

test('POD_NAME wins over HOSTNAME and NODE_ID (StatefulSet: wsc-0)', () => {
  const id = resolveNodeIdentity({ env: { POD_NAME: 'wsc-0', HOSTNAME: 'host-a', NODE_ID: 'custom' }, interfaces })
  assert.deepEqual(id, { nodeId: 'wsc-0', source: 'POD_NAME', ip: '10.244.1.5', port: undefined })
})

test('HOSTNAME is used when POD_NAME is unset or empty (Deployment)', () => {
  for (const env of [{ HOSTNAME: 'wsc-7d8f9c-abc12', NODE_ID: 'custom' }, { POD_NAME: '  ', HOSTNAME: 'wsc-7d8f9c-abc12' }]) {
    const id = resolveNodeIdentity({ env, interfaces })
    assert.equal(id?.nodeId, 'wsc-7d8f9c-abc12')
    assert.equal(id?.source, 'HOSTNAME')
  }
})

test('NODE_ID is used when neither POD_NAME nor HOSTNAME is set', () => {
  const id = resolveNodeIdentity({ env: { NODE_ID: 'custom-node-1', POD_NAME: '' }, interfaces })
  assert.equal(id?.nodeId, 'custom-node-1')
  assert.equal(id?.source, 'NODE_ID')
})

test('ip-port fallback: WSC_NODE_IP and WSC_NODE_PORT', () => {
  const id = resolveNodeIdentity({ env: { WSC_NODE_IP: '10.0.0.9', WSC_NODE_PORT: '8080', POD_IP: '10.0.0.1' }, interfaces })
  assert.deepEqual(id, { nodeId: '10.0.0.9-8080', source: 'ip-port', ip: '10.0.0.9', port: 8080 })
})

test('ip-port fallback: POD_IP when WSC_NODE_IP is unset, then the first non-internal IPv4', () => {
  assert.equal(resolveNodeIdentity({ env: { POD_IP: '10.0.0.1' }, listenPort: 9000, interfaces })?.nodeId, '10.0.0.1-9000')
  assert.equal(resolveNodeIdentity({ env: {}, listenPort: 9000, interfaces })?.nodeId, '10.244.1.5-9000')
  assert.equal(firstExternalIPv4({ lo: interfaces.lo }), '127.0.0.1')
})

test('ip-port fallback waits for the listen port when no port is configured', () => {
  assert.equal(resolveNodeIdentity({ env: {}, interfaces }), undefined)
  assert.equal(resolveNodeIdentity({ env: {}, listenPort: 3000, interfaces })?.nodeId, '10.244.1.5-3000')
  assert.equal(resolveNodeIdentity({ env: {}, nodePort: 8080, listenPort: 3000, interfaces })?.nodeId, '10.244.1.5-8080')
})

test('an explicit option overrides every environment source', () => {
  const id = resolveNodeIdentity({ nodeId: 'explicit', env: { POD_NAME: 'wsc-0', HOSTNAME: 'h', NODE_ID: 'n' }, interfaces })
  assert.equal(id?.nodeId, 'explicit')
  assert.equal(id?.source, 'option')
})

test('config node_ip is used for the address and the ip-port id', () => {
  const id = resolveNodeIdentity({ nodeIp: '192.0.2.7', nodePort: 8081, env: { WSC_NODE_IP: '10.9.9.9' }, interfaces })
  assert.equal(id?.nodeId, '192.0.2.7-8081')
})
