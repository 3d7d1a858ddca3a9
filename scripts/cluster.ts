// npm run cluster: Redis, nodes wsc-0, wsc-1, wsc-2 and nginx in front of them on loopback; Ctrl-C stops all.
// `npm run cluster -- --no-redis`: the nodes run alone on the embedded default (to try the load balancer only).
import { ClusterError, startLocalCluster, type LocalCluster } from './local-cluster.js'

const cluster: LocalCluster | undefined = await startLocalCluster({
  redis: !process.argv.includes('--no-redis'),
  onOutput: (name, line) => process.stdout.write(`[${name}] ${line}\n`)
}).catch((err: unknown) => {
  process.stderr.write(`${err instanceof ClusterError ? err.message : (err as Error).stack ?? String(err)}\n`)
  process.exitCode = 1
  return undefined
})

if (cluster !== undefined) {
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    process.stdout.write(`\n${signal}: stopping nginx, ${cluster.nodes.map((n) => n.name).join(', ')}${cluster.redis === undefined ? '' : ' and Redis'}\n`)
    cluster.stop().then(() => { process.exitCode = 0 }, (err: unknown) => {
      process.stderr.write(`${(err as Error).message}\n`)
      process.exitCode = 1
    })
  }
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))
  for (const node of cluster.nodes) {
    node.exited.then((code) => { if (!stopping) process.stdout.write(`[${node.name}] exited (${code})\n`) }, () => {})
  }
  process.stdout.write([
    '',
    `fastify-wsc on ${cluster.nodes.length} nodes behind nginx (${cluster.redis === undefined ? 'no Redis: each node alone' : `Redis on 127.0.0.1:${cluster.redis.port}`}):`,
    `  ${cluster.url}/`,
    `  ${cluster.wsUrl}?token=alice`,
    'nginx sends each new connection to the node with the fewest, so two tabs of that page are on two nodes.',
    'Or open the nodes themselves, one per tab, and chat across them:',
    ...cluster.nodes.map((n) => `  ${n.name}: http://127.0.0.1:${n.port}/  ws://127.0.0.1:${n.port}/ws?token=alice  metrics http://127.0.0.1:${n.metricsPort}/metrics`),
    'Ctrl-C stops everything.',
    ''
  ].join('\n'))
}
