import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { request } from 'node:http'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { ClusterError, startLocalCluster, type LocalCluster } from '../../scripts/local-cluster.js'
import { TestClient, within } from '../helper.js'
import { spreadOverNodes } from './loopback-client.js'
import { ROOT } from './pod.js'

// The script behind `npm run cluster`, with each node on the embedded default (`redis: false`): this
// exercises nginx, its generated configuration and the process handling without Redis routing. The
// same cluster with Redis is test/cluster-nginx/through-nginx.test.ts.

const NODE_IDS = ['wsc-0', 'wsc-1', 'wsc-2']

async function portClosed (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    socket.once('connect', () => { socket.destroy(); resolve(false) })
    socket.once('error', () => resolve(true))
  })
}

async function statusFrom (url: string, localAddress: string): Promise<number> {
  return within(new Promise((resolve, reject) => {
    const req = request(url, { localAddress }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.once('error', reject)
    req.end()
  }), 5000, `GET ${url}`)
}

async function assertStopped (cluster: LocalCluster): Promise<void> {
  await cluster.stop()
  for (const proc of [cluster.nginx, ...cluster.nodes, ...(cluster.redis === undefined ? [] : [cluster.redis])]) {
    assert.ok(proc.child.exitCode !== null || proc.child.signalCode !== null, `${proc.name} has exited`)
  }
  for (const port of [cluster.nginx.port, ...cluster.nodes.map((n) => n.port)]) assert.ok(await portClosed(port), `port ${port} is closed`)
  assert.equal(existsSync(cluster.dir), false, 'the temp dir is removed')
}

test('through nginx, clients from different addresses reach every node; a killed node\'s client reconnects to another', async (t) => {
  const cluster = await startLocalCluster({ redis: false })
  let stopped = false
  t.after(async () => { if (!stopped) await cluster.stop() })
  assert.deepEqual(cluster.nodes.map((n) => n.name), NODE_IDS)

  const placed = await spreadOverNodes(cluster.wsUrl, NODE_IDS)
  assert.deepEqual([...placed.keys()].sort(), NODE_IDS, 'ip_hash spreads source addresses over all three nodes')
  for (const { client } of placed.values()) {
    client.send({ type: 'ping' })
    await client.next('pong')
  }

  // wsc-1 dies: its client's next upgrade, from the same address, goes to the next upstream.
  const victim = placed.get('wsc-1')
  assert.ok(victim)
  cluster.nodes[1]?.child.kill('SIGKILL')
  await within(victim.client.closed, 10_000, 'the close of the killed node\'s connection')
  const client = await TestClient.connect(`${cluster.wsUrl}?token=${victim.user}`, { localAddress: victim.address })
  const welcome: Record<string, unknown> = client.welcome ?? {}
  assert.ok(['wsc-0', 'wsc-2'].includes(String(welcome.nodeId)), `reconnected to ${String(welcome.nodeId)}`)
  assert.equal(welcome.userId, victim.user)
  await client.close()
  for (const [nodeId, { client }] of placed) if (nodeId !== 'wsc-1') await client.close()

  stopped = true
  await assertStopped(cluster)
})

test('/metrics through nginx answers this host and refuses other addresses', async (t) => {
  const cluster = await startLocalCluster({ redis: false, nodes: 1 })
  t.after(() => cluster.stop())
  // 127.0.0.1 is allowed: nginx proxies to the metrics port (a 502 until a node serves /metrics there).
  assert.notEqual(await statusFrom(`${cluster.url}/metrics`, '127.0.0.1'), 403)
  // 127.0.0.2 is in none of the allowed networks, like a public client.
  assert.equal(await statusFrom(`${cluster.url}/metrics`, '127.0.0.2'), 403)
})

test('a node that cannot start stops the whole cluster, with the line that says why', async () => {
  const clusterDirs = (): string[] => readdirSync(tmpdir()).filter((name) => name.startsWith('wsc-cluster-'))
  const before = clusterDirs()
  const started = startLocalCluster({ redis: false, nodes: 2, nodeEnv: { WSC_MAX_CONNECTIONS: '0' } })
  await assert.rejects(started, (err: Error) => {
    assert.ok(err instanceof ClusterError)
    // A configuration error is the operator's to fix: exit code 2 and one line, no stack trace.
    assert.match(err.message, /^wsc-\d exited \(2\) before readiness/)
    assert.match(err.message, /\nconfig: websocket\.max_connections = "0" \(from WSC_MAX_CONNECTIONS\) is invalid: [^\n]*$/)
    return true
  })
  assert.deepEqual(clusterDirs().filter((name) => !before.includes(name)), [], 'its temp dir is removed')
})

test('without nginx the cluster says how to install it, and starts nothing', async () => {
  await assert.rejects(startLocalCluster({ nginx: '/nonexistent/nginx' }), /apt-get install nginx/)
})

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`npm run cluster prints the URL, serves through nginx, and stops everything on ${signal}`, async (t) => {
    const cli = spawn(process.execPath, ['--import', 'tsx', `${ROOT}scripts/cluster.ts`, '--no-redis'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = new Promise<number | null>((resolve) => cli.once('exit', (code) => resolve(code)))
    t.after(() => { if (cli.exitCode === null) cli.kill('SIGKILL') })
    let out = ''
    const printed = new Promise<string>((resolve, reject) => {
      cli.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        const url = /^ {2}(ws:\/\/127\.0\.0\.1:\d+\/ws)\?token=alice$/m.exec(out)?.[1]
        if (url !== undefined && out.includes('Ctrl-C stops everything.')) resolve(url)
      })
      cli.once('exit', (code) => reject(new Error(`exited (${code}) before printing the URL:\n${out}`)))
    })
    const wsUrl = await within(printed, 40_000, 'the URL')
    const ports = [...out.matchAll(/http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]))
    const client = await TestClient.connect(`${wsUrl}?token=alice`, { localAddress: '127.0.0.1' })
    const welcome: Record<string, unknown> = client.welcome ?? {}
    assert.match(String(welcome.nodeId), /^wsc-[012]$/)
    await client.close()

    cli.kill(signal)
    assert.equal(await within(exited, 20_000, 'the script to exit'), 0)
    assert.match(out, new RegExp(`${signal}: stopping nginx, wsc-0, wsc-1, wsc-2`))
    for (const port of [Number(/\/\/127\.0\.0\.1:(\d+)\/ws/.exec(wsUrl)?.[1]), ...ports]) assert.ok(await portClosed(port), `port ${port} is closed`)
  })
}
