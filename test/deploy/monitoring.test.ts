import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import type { Manifest } from './kustomize.js'
import { WSC_METRICS } from './metrics.js'
import { byKind, OVERLAYS, render, ROOT } from './pod.js'

interface Rule { alert?: string, expr: string, for?: string, labels?: Record<string, string>, annotations?: Record<string, string> }
type PrometheusRule = Manifest & { spec: { groups: Array<{ name: string, rules: Rule[] }> } }

function wscMetricsIn (expr: string): string[] {
  return [...expr.matchAll(/\bwsc_[a-z_]+/g)].map(([name]) => name.replace(/_(bucket|sum|count)$/, ''))
}

function balanced (expr: string): boolean {
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' }
  const stack: string[] = []
  for (const ch of expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')) {
    if ('([{'.includes(ch)) stack.push(ch)
    else if (ch in pairs && stack.pop() !== pairs[ch]) return false
  }
  return stack.length === 0
}

test('the PrometheusRule alerts on restarts, memory growth, Redis down and readiness failing, with our metric names', () => {
  for (const overlay of OVERLAYS) {
    const rule = byKind<PrometheusRule>(render(overlay), 'PrometheusRule')[0]
    assert.ok(rule, overlay)
    const rules = rule.spec.groups.flatMap((group) => group.rules)
    const byName = new Map(rules.map((r) => [r.alert, r]))
    assert.match(byName.get('WscPodRestarting')?.expr ?? '', /kube_pod_container_status_restarts_total/)
    assert.match(byName.get('WscMemoryGrowing')?.expr ?? '', /container_memory_working_set_bytes/)
    assert.match(byName.get('WscRedisDown')?.expr ?? '', /wsc_redis_up/)
    assert.match(byName.get('WscPodNotReady')?.expr ?? '', /kube_pod_status_ready/)
    for (const r of rules) {
      assert.ok(balanced(r.expr), `${r.alert ?? '?'}: brackets balance`)
      assert.ok(['warning', 'critical'].includes(r.labels?.severity ?? ''), `${r.alert ?? '?'}: severity`)
      assert.ok(r.annotations?.summary, `${r.alert ?? '?'}: summary`)
      assert.match(r.expr, /namespace="wsc"/, `${r.alert ?? '?'}: scoped to namespace wsc`)
      for (const name of wscMetricsIn(r.expr)) assert.ok(WSC_METRICS[name], `${r.alert ?? '?'}: ${name} is not a metric we export`)
    }
  }
})

test('the Grafana dashboard is valid JSON built on our metrics, shipped in a ConfigMap the Grafana sidecar loads', () => {
  const text = readFileSync(`${ROOT}k8s/components/monitoring/grafana-dashboard.json`, 'utf8')
  const dashboard = JSON.parse(text) as { uid: string, panels: Array<{ id: number, title: string, gridPos: { x: number, w: number }, targets: Array<{ expr: string }> }> }
  assert.equal(dashboard.uid, 'fastify-wsc')
  const ids = dashboard.panels.map((p) => p.id)
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  const used = new Set<string>()
  for (const panel of dashboard.panels) {
    assert.ok(panel.gridPos.x + panel.gridPos.w <= 24, `${panel.title}: fits the 24-column grid`)
    assert.ok(panel.targets.length > 0, `${panel.title}: has a query`)
    for (const { expr } of panel.targets) {
      assert.ok(balanced(expr), `${panel.title}: brackets balance`)
      for (const name of wscMetricsIn(expr)) {
        assert.ok(WSC_METRICS[name], `${panel.title}: ${name} is not a metric we export`)
        used.add(name)
      }
    }
  }
  assert.deepEqual([...used].sort(), Object.keys(WSC_METRICS).sort(), 'every metric we export has a panel')

  for (const overlay of OVERLAYS) {
    const configMap = byKind<Manifest & { data: Record<string, string> }>(render(overlay), 'ConfigMap').find((c) => c.metadata.name === 'wsc-grafana-dashboard')
    assert.equal(configMap?.metadata.labels?.grafana_dashboard, '1', overlay)
    assert.equal(configMap?.data['wsc-dashboard.json'], text, overlay)
  }
})
