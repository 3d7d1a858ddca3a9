import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { request } from 'node:http'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { ClusterError, startLocalCluster, type LocalCluster } from '../../scripts/local-cluster.js'
import { TestClient, waitFor, within } from '../helper.js'
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

test('through nginx, clients of one machine and from different addresses reach every node; a killed node\'s client reconnects to another', async (t) => {
  const cluster = await startLocalCluster({ redis: false })
  let stopped = false
  t.after(async () => { if (!stopped) await cluster.stop() })
  assert.deepEqual(cluster.nodes.map((n) => n.name), NODE_IDS)

  // Three tabs of one browser: the same address, open at the same time, one per node.
  const tabs: TestClient[] = []
  for (const user of ['tab-0', 'tab-1', 'tab-2']) tabs.push(await TestClient.connect(`${cluster.wsUrl}?token=${user}`, { localAddress: '127.0.0.1' }))
  assert.deepEqual(tabs.map((tab) => String(tab.welcome?.nodeId)).sort(), NODE_IDS, 'clients from 127.0.0.1 are spread over the nodes')
  for (const tab of tabs) await tab.close()

  const placed = await spreadOverNodes(cluster.wsUrl, NODE_IDS)
  assert.deepEqual([...placed.keys()].sort(), NODE_IDS, 'clients from different addresses reach all three nodes')
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

test('/metrics and /api through nginx answer this host and refuse other addresses; the page is public', async (t) => {
  const cluster = await startLocalCluster({ redis: false, nodes: 1 })
  t.after(() => cluster.stop())
  // 127.0.0.1 is allowed: nginx proxies to the metrics port (a 502 until a node serves /metrics there).
  assert.notEqual(await statusFrom(`${cluster.url}/metrics`, '127.0.0.1'), 403)
  // 127.0.0.2 is in none of the allowed networks, like a public client.
  assert.equal(await statusFrom(`${cluster.url}/metrics`, '127.0.0.2'), 403)
  assert.equal(await statusFrom(`${cluster.url}/api/nodes`, '127.0.0.1'), 200)
  for (const path of ['/api/nodes', '/api/presence/alice', '//api/nodes', '/%61pi/nodes', '/ws/../api/nodes']) {
    assert.equal(await statusFrom(`${cluster.url}${path}`, '127.0.0.2'), 403, `${path} from a public address`)
  }
  assert.equal(await statusFrom(`${cluster.url}/`, '127.0.0.2'), 200)
  assert.equal(await statusFrom(`${cluster.url}/client.js`, '127.0.0.2'), 200)
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

/** `npm run cluster` as a terminal runs it: its own process group, its output collected until it prints the URLs. */
async function startCli (t: TestContext, args: string[]): Promise<{ cli: ChildProcess, exited: Promise<number | null>, output: () => string }> {
  const cli = spawn(process.execPath, ['--import', 'tsx', `${ROOT}scripts/cluster.ts`, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const exited = new Promise<number | null>((resolve) => cli.once('exit', (code) => resolve(code)))
  t.after(() => { if (cli.exitCode === null && cli.pid !== undefined) process.kill(-cli.pid, 'SIGKILL') })
  let out = ''
  const printed = new Promise<void>((resolve, reject) => {
    const collect = (chunk: Buffer): void => {
      out += chunk.toString()
      if (out.includes('Ctrl-C stops everything.')) resolve()
    }
    cli.stdout.on('data', collect)
    cli.stderr.on('data', collect)
    cli.once('exit', (code) => reject(new Error(`exited (${code}) before printing the URLs:\n${out}`)))
  })
  await within(printed, 40_000, 'the URLs')
  return { cli, exited, output: () => out }
}

test('npm run cluster prints a URL per node; users on two nodes reach each other; Ctrl-C stops everything once, quietly', async (t) => {
  const { cli, exited, output } = await startCli(t, [])
  const nodeUrls = new Map([...output().matchAll(/^ {2}(wsc-\d): http:\/\/127\.0\.0\.1:(\d+)\/ {2}(ws:\/\/127\.0\.0\.1:\2\/ws)\?token=alice {2}metrics http:\/\/127\.0\.0\.1:\d+\/metrics$/gm)].map((m) => [m[1] as string, m[3] as string]))
  assert.deepEqual([...nodeUrls.keys()], NODE_IDS, 'a line per node with its page, WebSocket and metrics URLs')

  // The nodes get PORT, not WSC_NODE_PORT: each registers the port it listens on.
  const wsc0 = new URL(nodeUrls.get('wsc-0') ?? '').port
  const listed = await waitFor(async () => {
    const { nodes } = await (await fetch(`http://127.0.0.1:${wsc0}/api/nodes`)).json() as { nodes: Array<{ id: string, port: number | null }> }
    return nodes.length === NODE_IDS.length && nodes.every((node) => node.port !== null) ? nodes : undefined
  }, 5000, 'every node in the registry with its port')
  assert.deepEqual(listed.map((node) => [node.id, node.port]), NODE_IDS.map((id) => [id, Number(new URL(nodeUrls.get(id) ?? '').port)]))

  // One user on wsc-0's URL, one on wsc-1's: a message crosses from one node to the other.
  const alice = await TestClient.connect(`${nodeUrls.get('wsc-0') ?? ''}?token=alice`)
  const bob = await TestClient.connect(`${nodeUrls.get('wsc-1') ?? ''}?token=bob`)
  assert.deepEqual([alice.welcome?.nodeId, bob.welcome?.nodeId], ['wsc-0', 'wsc-1'])
  alice.send({ type: 'publish', id: 'hi', to: { user: 'bob' }, data: { text: 'from wsc-0' } })
  assert.deepEqual((await bob.next('message')).data, { text: 'from wsc-0' })
  await alice.close()
  await bob.close()

  // A terminal's Ctrl-C: SIGINT to the whole foreground process group.
  const ports = [...output().matchAll(/http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]))
  process.kill(-(cli.pid as number), 'SIGINT')
  assert.equal(await within(exited, 30_000, 'the script to exit'), 0)
  const out = output()
  assert.match(out, /SIGINT: stopping nginx, wsc-0, wsc-1, wsc-2 and Redis\n/)
  assert.doesNotMatch(out, /second signal/, 'each node is stopped once, by the script')
  assert.doesNotMatch(out, /^\[redis\]/m, 'Redis\'s start-up log (and the host\'s overcommit warning) is not shown')
  assert.doesNotMatch(out, /\[wsc-\d\] exited/, 'no node exits by itself')
  for (const port of ports) assert.ok(await portClosed(port), `port ${port} is closed`)
})

test('npm run cluster stops everything on SIGTERM to the script alone', async (t) => {
  const { cli, exited, output } = await startCli(t, ['--no-redis'])
  const wsUrl = /^ {2}(ws:\/\/127\.0\.0\.1:\d+\/ws)\?token=alice$/m.exec(output())?.[1]
  assert.ok(wsUrl, output())
  const client = await TestClient.connect(`${wsUrl}?token=alice`, { localAddress: '127.0.0.1' })
  assert.match(String(client.welcome?.nodeId), /^wsc-[012]$/)
  await client.close()

  cli.kill('SIGTERM')
  assert.equal(await within(exited, 20_000, 'the script to exit'), 0)
  assert.match(output(), /SIGTERM: stopping nginx, wsc-0, wsc-1, wsc-2\n/)
  for (const port of [...output().matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]))) assert.ok(await portClosed(port), `port ${port} is closed`)
})
