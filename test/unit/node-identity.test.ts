import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfig } from '../../lib/config.js'
import { firstExternalIPv4, resolveNodeIdentity } from '../../lib/node-identity.js'

const interfaces = {
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4' as const, mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  eth0: [
    { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6' as const, mac: '02:00:00:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 },
    { address: '10.244.1.5', netmask: '255.255.255.0', family: 'IPv4' as const, mac: '02:00:00:00:00:01', internal: false, cidr: '10.244.1.5/24' }
  ]
}

/** The identity a deployment gets: its environment through loadConfig, then the node-identity plugin's resolution. */
function fromEnv (env: Record<string, string | undefined>, listenPort?: number): ReturnType<typeof resolveNodeIdentity> {
  return resolveNodeIdentity({ ...loadConfig({ env }).server, listenPort, interfaces })
}

test('POD_NAME wins over HOSTNAME and NODE_ID (StatefulSet: wsc-0)', () => {
  assert.deepEqual(fromEnv({ POD_NAME: 'wsc-0', HOSTNAME: 'host-a', NODE_ID: 'custom' }), { nodeId: 'wsc-0', source: 'option', ip: '10.244.1.5', port: undefined })
})

test('HOSTNAME is used when POD_NAME is unset or empty (Deployment)', () => {
  for (const env of [{ HOSTNAME: 'wsc-7d8f9c-abc12', NODE_ID: 'custom' }, { POD_NAME: '  ', HOSTNAME: 'wsc-7d8f9c-abc12' }]) {
    assert.equal(fromEnv(env)?.nodeId, 'wsc-7d8f9c-abc12')
  }
})

test('NODE_ID is used when neither POD_NAME nor HOSTNAME is set', () => {
  assert.equal(fromEnv({ NODE_ID: 'custom-node-1', POD_NAME: '' })?.nodeId, 'custom-node-1')
})

test('ip-port fallback: WSC_NODE_IP and WSC_NODE_PORT', () => {
  assert.deepEqual(fromEnv({ WSC_NODE_IP: '10.0.0.9', WSC_NODE_PORT: '8080', POD_IP: '10.0.0.1' }), { nodeId: '10.0.0.9-8080', source: 'ip-port', ip: '10.0.0.9', port: 8080 })
})

test('ip-port fallback: POD_IP when WSC_NODE_IP is unset, then the first non-internal IPv4', () => {
  assert.equal(fromEnv({ POD_IP: '10.0.0.1' }, 9000)?.nodeId, '10.0.0.1-9000')
  assert.equal(fromEnv({}, 9000)?.nodeId, '10.244.1.5-9000')
  assert.equal(firstExternalIPv4({ lo: interfaces.lo }), '127.0.0.1')
})

test('ip-port fallback waits for the listen port when no port is configured', () => {
  assert.equal(resolveNodeIdentity({ interfaces }), undefined)
  assert.equal(resolveNodeIdentity({ listenPort: 3000, interfaces })?.nodeId, '10.244.1.5-3000')
  assert.equal(resolveNodeIdentity({ nodePort: 8080, listenPort: 3000, interfaces })?.nodeId, '10.244.1.5-8080')
})

test('an explicit id keeps the listen port as its port', () => {
  assert.deepEqual(resolveNodeIdentity({ nodeId: 'wsc-0', listenPort: 3000, interfaces }), { nodeId: 'wsc-0', source: 'option', ip: '10.244.1.5', port: 3000 })
})

test('an explicit option overrides every environment source', () => {
  const config = loadConfig({ env: { POD_NAME: 'wsc-0', HOSTNAME: 'h', NODE_ID: 'n' }, options: { server: { nodeId: 'explicit' } } })
  assert.equal(resolveNodeIdentity({ ...config.server, interfaces })?.nodeId, 'explicit')
})

test('config node_ip is used for the address and the ip-port id', () => {
  const config = loadConfig({ env: { WSC_NODE_IP: '10.9.9.9' }, options: { server: { nodeIp: '192.0.2.7', nodePort: 8081 } } })
  assert.equal(resolveNodeIdentity({ ...config.server, interfaces })?.nodeId, '192.0.2.7-8081')
})

test('resolution reads nothing but its input: POD_NAME in the process environment changes nothing', (t) => {
  const saved = process.env.POD_NAME
  process.env.POD_NAME = 'from-the-environment'
  t.after(() => {
    if (saved === undefined) delete process.env.POD_NAME
    else process.env.POD_NAME = saved
  })
  assert.equal(resolveNodeIdentity({ listenPort: 3000, interfaces })?.nodeId, '10.244.1.5-3000')
})
