import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import type { Manifest } from './kustomize.js'
import { documentedMetrics } from './metrics.js'
import { alertRules, dashboard, DASHBOARD_FILE, dashboardQueries, EXTERNAL_METRICS } from './monitoring.js'
import { byKind, OVERLAYS, render, ROOT } from './pod.js'
import { metricNames, parse } from './promql.js'

// What can be checked without a running node; test/deploy/alerts.test.ts evaluates the same
// expressions against a scrape of one.

function knownMetric (name: string): boolean {
  const family = name.replace(/_(bucket|sum|count)$/, '')
  return documentedMetrics().has(family) || EXTERNAL_METRICS[name] !== undefined
}

test('the PrometheusRule alerts on restarts, memory growth, Redis and MySQL down, readiness and missing nodes, with documented metrics', () => {
  for (const overlay of OVERLAYS) {
    const rule = byKind<Manifest & { spec: unknown }>(render(overlay), 'PrometheusRule')[0]
    assert.ok(rule, overlay)
  }
  const rules = alertRules()
  assert.deepEqual(rules.map((r) => r.alert), ['WscPodRestarting', 'WscMemoryGrowing', 'WscRedisDown', 'WscMySQLDown', 'WscPodNotReady', 'WscNodesMissing'])
  const byName = new Map(rules.map((r) => [r.alert, r]))
  assert.deepEqual(metricNames(parse(byName.get('WscRedisDown')?.expr ?? '')), ['wsc_router_up'])
  assert.deepEqual(metricNames(parse(byName.get('WscMySQLDown')?.expr ?? '')), ['wsc_store_up'])
  for (const r of rules) {
    const names = metricNames(parse(r.expr))
    assert.ok(names.length > 0, `${r.alert}: selects a metric`)
    for (const name of names) assert.ok(knownMetric(name), `${r.alert}: ${name} is neither in docs/metrics.md nor from kube-state-metrics/cAdvisor`)
    assert.ok(['warning', 'critical'].includes(r.labels?.severity ?? ''), `${r.alert}: severity`)
    assert.ok(r.annotations?.summary, `${r.alert}: summary`)
    assert.match(r.expr, /namespace="wsc"/, `${r.alert}: scoped to namespace wsc`)
  }
})

test('the Grafana dashboard is valid JSON built on documented metrics, shipped in a ConfigMap the Grafana sidecar loads', () => {
  const board = dashboard()
  assert.equal(board.uid, 'fastify-wsc')
  const ids = board.panels.map((p) => p.id)
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  for (const panel of board.panels) {
    assert.ok(panel.gridPos.x + panel.gridPos.w <= 24, `${panel.title}: fits the 24-column grid`)
    assert.ok(panel.targets.length > 0, `${panel.title}: has a query`)
  }
  const used = new Set<string>()
  for (const { where, expr } of dashboardQueries()) {
    for (const name of metricNames(parse(expr))) {
      assert.ok(knownMetric(name), `${where}: ${name} is neither in docs/metrics.md nor from kube-state-metrics/cAdvisor`)
      used.add(name.replace(/_(bucket|sum|count)$/, ''))
    }
  }
  for (const name of ['wsc_connections', 'wsc_router_up', 'wsc_store_up', 'wsc_dropped_total', 'wsc_cluster_nodes', 'wsc_delivery_latency_seconds']) {
    assert.ok(used.has(name), `a panel shows ${name}`)
  }

  const text = readFileSync(DASHBOARD_FILE, 'utf8')
  for (const overlay of OVERLAYS) {
    const configMap = byKind<Manifest & { data: Record<string, string> }>(render(overlay), 'ConfigMap').find((c) => c.metadata.name === 'wsc-grafana-dashboard')
    assert.equal(configMap?.metadata.labels?.grafana_dashboard, '1', overlay)
    assert.equal(configMap?.data['wsc-dashboard.json'], text, overlay)
  }
})

test('kube-prometheus-stack, installed as the guide says, selects the ServiceMonitor and the PrometheusRule', () => {
  // The chart's Prometheus: serviceMonitorSelector and ruleSelector are matchLabels { release: <Helm
  // release name> } (serviceMonitorSelectorNilUsesHelmValues, ruleSelectorNilUsesHelmValues default
  // true); its namespace selectors are {} (every namespace).
  const guide = readFileSync(`${ROOT}docs/deploy-kubernetes.md`, 'utf8')
  const release = /helm install (\S+) prometheus-community\/kube-prometheus-stack/.exec(guide)?.[1]
  assert.ok(release, 'the guide says how to install kube-prometheus-stack')
  const selector = { release }
  for (const overlay of OVERLAYS) {
    const resources = render(overlay)
    for (const kind of ['ServiceMonitor', 'PrometheusRule']) {
      const [object] = byKind(resources, kind)
      assert.ok(object, `${overlay}: ${kind}`)
      for (const [key, value] of Object.entries(selector)) assert.equal(object.metadata.labels?.[key], value, `${overlay}: ${kind} ${object.metadata.name} has ${key}: ${value}`)
    }
  }
})
