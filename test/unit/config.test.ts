/* eslint-disable no-template-curly-in-string -- these tests are about ${VAR} expansion */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CONFIG_KEYS, expandEnv, loadConfig } from '../../lib/config.js'

function configFile (t: import('node:test').TestContext, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'wsc-config-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'config.yaml')
  writeFileSync(file, text)
  return file
}

test('defaults match the documented ones', () => {
  const config = loadConfig({ env: {} })
  assert.equal(config.websocket.maxConnections, 10000)
  assert.equal(config.websocket.messageBufferSize, 1000)
  assert.equal(config.websocket.heartbeatInterval, 30_000)
  assert.equal(config.websocket.maxPayload, 64 * 1024)
  assert.equal(config.websocket.maxConnectionsPerUser, 0)
  assert.equal(config.distributed.heartbeatInterval, 5000)
  assert.equal(config.distributed.nodeDiscoveryInterval, 10_000)
  assert.equal(config.distributed.enabled, true)
  assert.equal(config.redis.addr, '')
  assert.equal(config.redis.prefix, 'wsc:')
})

test('the reference guide config.yaml loads, with ${VAR} expansion and durations', (t) => {
  const file = configFile(t, `
server:
  node_ip: \${POD_IP}
  node_port: 8080
redis:
  addr: redis:6379
  password: \${REDIS_PASSWORD}
  db: 0
distributed:
  enabled: true
  node_discovery_interval: 10s
  heartbeat_interval: 5s
websocket:
  max_connections: 10000
  message_buffer_size: 1000
  heartbeat_interval: 30s
`)
  const config = loadConfig({ env: { WSC_CONFIG: file, POD_IP: '10.1.2.3', REDIS_PASSWORD: 's3cret' } })
  assert.equal(config.server.nodeIp, '10.1.2.3')
  assert.equal(config.server.nodePort, 8080)
  assert.equal(config.redis.addr, 'redis:6379')
  assert.equal(config.redis.password, 's3cret')
  assert.equal(config.distributed.nodeDiscoveryInterval, 10_000)
  assert.equal(config.websocket.heartbeatInterval, 30_000)
})

test('${VAR:-default} expands to the default when VAR is unset or empty', () => {
  assert.equal(expandEnv('${A:-x}-${B:-y}-${C}', { B: '', C: 'c' }), 'x-y-c')
  assert.equal(expandEnv('plain', {}), 'plain')
})

test('an unset ${VAR} leaves the key to the default', (t) => {
  const file = configFile(t, 'server:\n  node_ip: ${POD_IP}\nredis:\n  password: ${REDIS_PASSWORD}\n')
  const config = loadConfig({ env: { WSC_CONFIG: file } })
  assert.equal(config.server.nodeIp, '')
  assert.equal(config.redis.password, '')
})

test('precedence: options > env > file > defaults', (t) => {
  const file = configFile(t, 'websocket:\n  max_connections: 100\n  message_buffer_size: 50\n  heartbeat_interval: 10s\n')
  const env = { WSC_CONFIG: file, WSC_MAX_CONNECTIONS: '200', WSC_MESSAGE_BUFFER_SIZE: '60' }
  const config = loadConfig({ env, options: { websocket: { maxConnections: 300 } } })
  assert.equal(config.websocket.maxConnections, 300, 'option beats env and file')
  assert.equal(config.websocket.messageBufferSize, 60, 'env beats file')
  assert.equal(config.websocket.heartbeatInterval, 10_000, 'file beats default')
  assert.equal(config.websocket.maxPayload, 65536, 'default when nothing sets it')
})

test('every env var the table names is read', () => {
  for (const spec of CONFIG_KEYS) {
    for (const variable of spec.env ?? []) {
      const sample = spec.kind === 'int' || spec.kind === 'duration' || spec.kind === 'bytes' ? String(spec.max ?? 7) : spec.kind === 'bool' ? 'false' : spec.kind === 'enum' ? String(spec.values?.[1]) : spec.kind === 'list' ? 'a:1,b:2' : 'sample'
      // A long shutdown budget, so the largest drain settings still fit in it.
      const env = variable === 'WSC_SHUTDOWN_TIMEOUT' ? { [variable]: sample } : { WSC_SHUTDOWN_TIMEOUT: '3600s', [variable]: sample }
      const config = loadConfig({ env }) as unknown as Record<string, Record<string, unknown>>
      const [section = '', name = ''] = spec.key.split('.')
      const value = config[section]?.[name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())]
      assert.notDeepEqual(value, spec.deployDefault ?? spec.default, `${variable} should change ${spec.key}`)
    }
  }
})

test('a bad value stops start-up with one line naming the key, the value, its origin and what is allowed', (t) => {
  const cases: Array<[Partial<Parameters<typeof loadConfig>[0]>, RegExp]> = [
    [{ env: { WSC_MAX_CONNECTIONS: 'lots' } }, /^config: websocket\.max_connections = "lots" \(from WSC_MAX_CONNECTIONS\) is invalid: expected an integer from 1 to 10000000$/],
    [{ env: { WSC_HEARTBEAT_INTERVAL: '5 parsecs' } }, /websocket\.heartbeat_interval = "5 parsecs" .*expected a duration/],
    [{ env: { WSC_MAX_PAYLOAD: '1TB' } }, /websocket\.max_payload = "1TB" .*expected a size/],
    [{ env: { REDIS_MODE: 'mesh' } }, /redis\.mode = "mesh" .*one of auto, standalone, sentinel, cluster/],
    [{ options: { websocket: { maxConnections: 0 } } }, /websocket\.max_connections = 0 \(from plugin option\)/],
    [{ env: { WSC_DISTRIBUTED_ENABLED: 'maybe' } }, /distributed\.enabled = "maybe" .*true or false/]
  ]
  for (const [input, pattern] of cases) {
    assert.throws(() => loadConfig({ env: {}, ...input }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'WSC_ERR_CONFIG')
      assert.match(err.message, pattern)
      assert.equal(err.message.includes('\n'), false)
      return true
    })
  }
  const file = configFile(t, 'websocket:\n  max_conections: 5\n')
  assert.throws(() => loadConfig({ env: { WSC_CONFIG: file } }), /unknown key websocket\.max_conections in .*config\.yaml/)
  assert.throws(() => loadConfig({ env: {}, options: { websocket: { maxConections: 5 } as never } }), /unknown key websocket\.maxConections in plugin options/)
  const broken = configFile(t, 'websocket: [1, 2\n')
  assert.throws(() => loadConfig({ env: { WSC_CONFIG: broken } }), /is not valid YAML/)
  assert.throws(() => loadConfig({ env: { WSC_CONFIG: '/nonexistent/config.yaml' } }), /cannot read \/nonexistent\/config\.yaml/)
})
