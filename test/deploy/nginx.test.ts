import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findExecutable, nginxArgs, writeLoopbackNginxConfig } from '../../scripts/local-cluster.js'
import { ROOT } from './pod.js'

const SITE = readFileSync(`${ROOT}k8s/nginx/conf.d/wsc.conf`, 'utf8')
const LOCATIONS = readFileSync(`${ROOT}k8s/nginx/snippets/wsc-locations.conf`, 'utf8')

function nginxBinary (): string {
  const nginx = findExecutable('nginx', ['/usr/sbin', '/usr/local/sbin'])
  assert.ok(nginx, 'nginx is not installed: apt-get install nginx (.ci/run installs it)')
  return nginx
}

function tempDir (t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'wsc-nginx-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** `nginx -t` on the configuration in `dir`; fails with nginx's own words. */
function nginxTest (dir: string): void {
  const result = spawnSync(nginxBinary(), ['-t', ...nginxArgs(dir)], { encoding: 'utf8' })
  assert.equal(result.status, 0, `nginx -t failed:\n${result.stderr}`)
  assert.match(result.stderr, /test is successful/)
}

/** The body of the block that starts with `head` (no nested braces in it). */
function block (text: string, head: RegExp): string {
  const match = new RegExp(`${head.source}\\s*\\{([^}]*)\\}`, 'm').exec(text)
  assert.ok(match, `no block ${head.source}`)
  return match[1] ?? ''
}

test('nginx -t passes on k8s/nginx as installed under /etc/nginx, with a self-signed certificate for the TLS server', (t) => {
  const dir = tempDir(t)
  // The layout of /etc/nginx: conf.d/ and snippets/ beside nginx.conf, includes relative to it.
  cpSync(`${ROOT}k8s/nginx`, dir, { recursive: true })
  mkdirSync(join(dir, 'ssl'))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=ws.example.com',
    '-keyout', join(dir, 'ssl/ws.example.com.key'), '-out', join(dir, 'ssl/ws.example.com.crt')], { stdio: 'ignore' })
  const site = SITE.replaceAll('/etc/nginx/ssl/', `${dir}/ssl/`)
  assert.notEqual(site, SITE, 'the certificate paths were pointed at the test certificate')
  writeFileSync(join(dir, 'conf.d/wsc.conf'), site)
  writeFileSync(join(dir, 'nginx.conf'), [
    `pid ${dir}/nginx.pid;`,
    'events { worker_connections 1024; }',
    'http {',
    `  access_log ${dir}/access.log;`,
    '  include conf.d/*.conf;',
    '}'
  ].join('\n'))
  nginxTest(dir)
})

test('nginx -t passes on the loopback configuration the local cluster generates', (t) => {
  const dir = tempDir(t)
  writeLoopbackNginxConfig(dir, 18080, [{ port: 18081, metricsPort: 18091 }, { port: 18082, metricsPort: 18092 }, { port: 18083, metricsPort: 18093 }])
  nginxTest(dir)
  const generated = readFileSync(join(dir, 'conf.d/wsc.conf'), 'utf8')
  const backend = block(generated, /upstream wsc_backend/)
  assert.deepEqual([...backend.matchAll(/^\s*server (\S+)/gm)].map((m) => m[1]), ['127.0.0.1:18081', '127.0.0.1:18082', '127.0.0.1:18083'])
  // Every loopback client has the address 127.0.0.1: ip_hash would put them all on one node.
  assert.doesNotMatch(backend, /^\s*ip_hash;/m, 'no ip_hash on loopback')
  assert.match(backend, /^\s*least_conn;/m, 'connections spread over the nodes')
  assert.match(backend, /max_fails=3 fail_timeout=30s/, 'the production failure detection is kept')
  assert.deepEqual([...block(generated, /upstream wsc_metrics/).matchAll(/^\s*server (\S+)/gm)].map((m) => m[1]), ['127.0.0.1:18091', '127.0.0.1:18092', '127.0.0.1:18093'])
  assert.equal(readFileSync(join(dir, 'snippets/wsc-locations.conf'), 'utf8'), LOCATIONS, 'the locations are used unchanged')
  assert.match(generated, /^log_format wsc '/m, 'the log format of k8s/nginx')
  assert.match(block(generated, /server/), new RegExp(`^\\s*access_log ${dir}/access\\.log wsc;$`, 'm'))
  assert.match(readFileSync(join(dir, 'nginx.conf'), 'utf8'), /^daemon off;$/m, 'nginx stays in the foreground, a child of the script')
})

const PRIVATE = ['127.0.0.1', '::1', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']

test('k8s/nginx balances with ip_hash, upgrades WebSockets, keeps them an hour, and keeps /metrics and /api private', () => {
  assert.match(block(SITE, /upstream wsc_backend/), /^\s*ip_hash;/m)
  const map = block(SITE, /map \$http_upgrade \$connection_upgrade/)
  assert.match(map, /default\s+upgrade;/)
  assert.match(map, /''\s+close;/)
  const ws = block(LOCATIONS, /location \/ws/)
  assert.match(ws, /proxy_http_version 1\.1;/)
  assert.match(ws, /proxy_set_header Upgrade \$http_upgrade;/)
  assert.match(ws, /proxy_set_header Connection \$connection_upgrade;/)
  assert.match(ws, /proxy_buffering off;/)
  for (const directive of ['proxy_read_timeout', 'proxy_send_timeout']) {
    const seconds = Number(new RegExp(`${directive} (\\d+)s;`).exec(ws)?.[1])
    assert.ok(seconds >= 3600, `${directive} ${seconds}s outlasts idle connections (pings every 30 s)`)
  }
  assert.match(block(LOCATIONS, /location = \/health/), /proxy_pass http:\/\/wsc_backend;/)
  const metrics = block(LOCATIONS, /location = \/metrics/)
  assert.match(metrics, /proxy_pass http:\/\/wsc_metrics;/)
  assert.deepEqual([...metrics.matchAll(/allow (\S+);/g)].map((m) => m[1]), PRIVATE)
  assert.match(metrics, /deny all;\s*$/m)
  // The example's send API: every /api/ path, from this host and the private networks only.
  const api = block(LOCATIONS, /location \/api\//)
  assert.deepEqual([...api.matchAll(/allow (\S+);/g)].map((m) => m[1]), PRIVATE)
  assert.match(api, /deny all;\s*$/m)
  assert.match(api, /proxy_pass http:\/\/wsc_backend;/)
  assert.deepEqual([...LOCATIONS.matchAll(/^location\s+([^{]+?)\s*\{/gm)].map((m) => m[1]), ['/ws', '= /health', '= /metrics', '/api/', '/'], 'no other location reaches /api')
  assert.match(SITE, /:30080/, 'the http NodePort of k8s/components/nodeport')
  assert.match(SITE, /:30081/, 'the metrics NodePort of k8s/components/nodeport')
})

test('k8s/nginx logs /ws without its query string, where browsers put their token', () => {
  const lineFor = block(SITE, /map \$uri \$wsc_request_line/)
  assert.match(lineFor, /~\^\/ws\s+"\$request_method \$uri \$server_protocol";/, '/ws is logged by $uri, which has no query string')
  assert.doesNotMatch(lineFor, /\$request_uri|\$args|\$query_string/)
  const format = /^log_format wsc '([^']*)';$/m.exec(SITE)?.[1] ?? ''
  assert.match(format, /"\$wsc_request_line"/)
  assert.doesNotMatch(format, /\$request\b|\$request_uri|\$args|\$query_string/, 'no other variable carries the query string')
  // Every server block logs in that format (a server without access_log would log in combined).
  const servers = SITE.split(/^server \{/m).slice(1)
  assert.equal(servers.length, 2)
  for (const server of servers) assert.match(server, /^\s*access_log \S+ wsc;$/m)
})
