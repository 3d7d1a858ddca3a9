import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { MySqlProxy, testDatabase } from '../backends.js'
import { requireBuild, startExampleNode, type ExampleNode } from '../example-node.js'
import { TestClient, waitFor } from '../helper.js'
import { parsePrometheusText, valueOf, type Sample } from '../prometheus-text.js'
import { startRedisServer } from '../redis-harness.js'
import { addExternalSeries, alertRules, dashboardQueries, EXTERNAL_METRICS, MiB, type PodState } from './monitoring.js'
import { documentedMetrics } from './metrics.js'
import { ROOT } from './pod.js'
import { metricNames, parse, SeriesStore, type Element } from './promql.js'

// The alerts and the dashboard against what a running node exports: two example nodes (Redis + MySQL)
// are scraped the way the ServiceMonitor scrapes a pod, every PromQL expression is evaluated against
// those samples, and each alert is shown to stay quiet on a healthy cluster and to fire once its
// condition is forced for real (a node killed, MySQL cut off, Redis stopped). Series that come from
// kube-state-metrics and cAdvisor, which do not run here, are written as those exporters label them.

const SCRAPE_INTERVAL = 15

async function scrape (node: ExampleNode): Promise<Sample[] | undefined> {
  try {
    const response = await fetch(node.metricsUrl, { signal: AbortSignal.timeout(2000) })
    return response.ok ? parsePrometheusText(await response.text()) : undefined
  } catch {
    return undefined
  }
}

/** The labels the Prometheus Operator adds to every sample of a pod scraped through Service wsc. */
function target (pod: string): Record<string, string> {
  return { namespace: 'wsc', pod, container: 'wsc', service: 'wsc', endpoint: 'metrics', job: 'wsc' }
}

function firing (store: SeriesStore, at: number): Map<string, Element[]> {
  const alerts = new Map<string, Element[]>()
  for (const rule of alertRules()) {
    const result = store.evaluate(rule.expr, at)
    assert.ok(Array.isArray(result), `${rule.alert}: an alert expression yields a vector`)
    if (result.length > 0) alerts.set(rule.alert, result)
  }
  return alerts
}

test('every metric the PrometheusRule, the dashboard and docs/metrics.md name is what a running node exports, and each panel has data', async (t) => {
  requireBuild()
  const redis = await startRedisServer(t)
  const db = await testDatabase(t)
  const nodes: ExampleNode[] = []
  for (const nodeId of ['wsc-0', 'wsc-1']) nodes.push(await startExampleNode(t, { nodeId, redisAddr: redis.addr, mysqlUrl: db.url }))
  const [wsc0, wsc1] = nodes as [ExampleNode, ExampleNode]

  // One user on each node, a message across, both closed, and an upgrade without a token: opens,
  // closes, deliveries, latencies and refusals.
  const alice = await TestClient.connect(wsc0.wsUrl('token=alice'))
  const bob = await TestClient.connect(wsc1.wsUrl('token=bob'))
  alice.send({ type: 'publish', id: 'p-1', to: { user: 'bob' }, data: { text: 'hi' } })
  await bob.next('message')
  await alice.close()
  await bob.close()
  assert.equal((await TestClient.refusal(wsc0.wsUrl())).statusCode, 401)

  const store = new SeriesStore()
  const scraped = new Set<string>()
  let last: Sample[] = []
  let at = 0
  for (let round = 0; round < 5; round++, at += SCRAPE_INTERVAL) {
    for (const node of nodes) {
      const samples = await scrape(node)
      assert.ok(samples, `${node.nodeId}: /metrics answers`)
      for (const sample of samples) scraped.add(sample.name)
      if (node === wsc0) last = samples
      store.scrape(target(node.nodeId), at, samples)
    }
    addExternalSeries(store, at, nodes.map((node) => ({ pod: node.nodeId })))
  }
  const now = at - SCRAPE_INTERVAL

  // docs/metrics.md's "Useful queries", one per line.
  const metricsDoc = readFileSync(`${ROOT}docs/metrics.md`, 'utf8')
  const docQueries = [...metricsDoc.matchAll(/```promql\n([\s\S]*?)```/g)].flatMap((m) => (m[1] ?? '').split('\n'))
    .filter((line) => line.trim() !== '' && !line.startsWith('#')).map((expr) => ({ where: 'docs/metrics.md', expr, label: undefined }))
  assert.ok(docQueries.length > 0)
  const expressions = [
    ...alertRules().map((rule) => ({ where: `alert ${rule.alert}`, expr: rule.expr, label: undefined })),
    ...dashboardQueries(),
    ...docQueries
  ]
  for (const { where, expr } of expressions) {
    for (const name of metricNames(parse(expr))) {
      assert.ok(scraped.has(name) || EXTERNAL_METRICS[name] !== undefined, `${where}: ${name} is neither exported by the node nor by kube-state-metrics/cAdvisor`)
    }
  }
  for (const { expr } of docQueries) assert.ok(Array.isArray(store.evaluate(expr, now)), `docs/metrics.md: ${expr} evaluates`)
  for (const { where, expr, label } of dashboardQueries()) {
    const result = store.evaluate(expr, now)
    assert.ok(Array.isArray(result) && result.length > 0, `${where}: ${expr} has data on a running cluster`)
    if (label !== undefined) assert.ok(result.some((e) => e.labels[label] !== undefined), `${where}: the series carry the label ${label}`)
  }

  // docs/metrics.md lists exactly the wsc_* families the node exports, with their labels.
  const documented = documentedMetrics()
  const family = (name: string): string => name.replace(/_(bucket|sum|count)$/, '')
  const families = new Set([...scraped].filter((name) => name.startsWith('wsc_')).map(family))
  assert.deepEqual([...families].sort(), [...documented.keys()].sort(), 'docs/metrics.md lists the wsc_ metrics the node exports')
  for (const sample of last.filter((s) => s.name.startsWith('wsc_'))) {
    const labels = Object.keys(sample.labels).filter((l) => l !== 'le').sort()
    assert.deepEqual(labels, [...documented.get(family(sample.name))?.labels ?? []].sort(), `${sample.name}: labels as docs/metrics.md says`)
  }
})

test('each wsc_ alert is quiet on a healthy cluster and fires when its condition is forced: a node gone, MySQL cut off, Redis stopped', async (t) => {
  requireBuild()
  const redis = await startRedisServer(t)
  const db = await testDatabase(t)
  const mysql = await MySqlProxy.start(t)
  const nodes: ExampleNode[] = []
  for (const nodeId of ['wsc-0', 'wsc-1']) nodes.push(await startExampleNode(t, { nodeId, redisAddr: redis.addr, mysqlUrl: db.urlVia(mysql.port) }))
  const [wsc0, wsc1] = nodes as [ExampleNode, ExampleNode]

  const store = new SeriesStore()
  let at = 0
  // kube-state-metrics keeps reporting both pods ready: what it says before the kubelet's probes fail.
  const pods: PodState[] = nodes.map((node) => ({ pod: node.nodeId }))
  /** One scrape of every node; each must answer but those in `dead` (a failed scrape would leave its alerts nothing to evaluate). */
  const round = async (dead: ExampleNode[] = []): Promise<number> => {
    for (const node of nodes) {
      const samples = await scrape(node)
      if (!dead.includes(node)) assert.ok(samples !== undefined, `${node.nodeId} answers /metrics`)
      store.scrape(target(node.nodeId), at, samples)
    }
    addExternalSeries(store, at, pods)
    at += SCRAPE_INTERVAL
    return at - SCRAPE_INTERVAL
  }
  const metric = async (node: ExampleNode, name: string): Promise<number | undefined> => {
    const samples = await scrape(node)
    return samples === undefined ? undefined : valueOf(samples, name)
  }

  let now = 0
  for (let i = 0; i < 3; i++) now = await round()
  assert.deepEqual([...firing(store, now).keys()], [], 'no alert fires on a healthy cluster')

  // wsc-1 dies without deregistering: wsc-0 sees one live node while two pods are still ready.
  wsc1.child.kill('SIGKILL')
  await wsc1.exited
  await waitFor(async () => await metric(wsc0, 'wsc_cluster_nodes') === 1 ? true : undefined, 15_000, 'wsc-0 to reap wsc-1 from the registry')
  now = await round([wsc1])
  assert.deepEqual([...firing(store, now).keys()], ['WscNodesMissing'])
  assert.deepEqual(firing(store, now).get('WscNodesMissing')?.map((e) => e.labels), [{ namespace: 'wsc' }])
  nodes.pop()
  pods.pop()

  // MySQL vanishes: the store's next periodic probe (every 5 s) marks it down.
  await mysql.cut()
  await waitFor(async () => await metric(wsc0, 'wsc_store_up') === 0 ? true : undefined, 15_000, 'wsc_store_up 0 on wsc-0')
  now = await round()
  assert.deepEqual(firing(store, now).get('WscMySQLDown')?.map((e) => e.labels), [{ namespace: 'wsc', pod: 'wsc-0' }])

  // Redis stops: the router reports down.
  await redis.stop()
  await waitFor(async () => await metric(wsc0, 'wsc_router_up') === 0 ? true : undefined, 15_000, 'wsc_router_up 0 on wsc-0')
  now = await round()
  assert.deepEqual(firing(store, now).get('WscRedisDown')?.map((e) => e.labels), [{ namespace: 'wsc', pod: 'wsc-0' }])
})

test('the kube-state-metrics and cAdvisor alerts fire on restarts, readiness failures and memory growth, and not on a steady pod', () => {
  const history = (states: (minute: number) => PodState[], minutes = 70): { store: SeriesStore, at: number } => {
    const store = new SeriesStore()
    for (let minute = 0; minute <= minutes; minute++) addExternalSeries(store, minute * 60, states(minute))
    return { store, at: minutes * 60 }
  }
  const fired = (h: { store: SeriesStore, at: number }): string[] => [...firing(h.store, h.at).keys()]

  const steady = history(() => [{ pod: 'wsc-0' }, { pod: 'wsc-1' }])
  assert.deepEqual(fired(steady), [], 'a steady pod')

  // Three restarts in the last 15 minutes fire; two do not.
  assert.deepEqual(fired(history((m) => [{ pod: 'wsc-0', restarts: m < 60 ? 0 : Math.min(3, m - 59) }])), ['WscPodRestarting'])
  assert.deepEqual(fired(history((m) => [{ pod: 'wsc-0', restarts: m < 60 ? 0 : Math.min(2, m - 59) }])), [])

  assert.deepEqual(fired(history((m) => [{ pod: 'wsc-0', ready: m < 60 }, { pod: 'wsc-1' }])), ['WscPodNotReady'])

  // 256 MiB more over the last hour reaches the 1 GiB limit within 4 hours; so does a container that
  // grows again after a restart (a second cAdvisor series for the same container in the window).
  const growing = (m: number): number => (512 + Math.max(0, m - 10) * 256 / 60) * MiB
  assert.deepEqual(fired(history((m) => [{ pod: 'wsc-0', workingSetBytes: growing(m) }])), ['WscMemoryGrowing'])
  assert.deepEqual(fired(history((m) => [{ pod: 'wsc-0', workingSetBytes: m < 40 ? growing(m) : growing(m) - 100 * MiB, containerId: m < 40 ? 'first' : 'second', restarts: m < 40 ? 0 : 1 }])), ['WscMemoryGrowing'])
  assert.deepEqual(fired(history(() => [{ pod: 'wsc-0', workingSetBytes: 700 * MiB }])), [], 'a high but flat working set')
})
