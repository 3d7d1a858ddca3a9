import { readFileSync } from 'node:fs'
import type { Manifest } from './kustomize.js'
import { byKind, render, ROOT } from './pod.js'
import { SeriesStore, type Labels } from './promql.js'

export interface AlertRule { alert: string, expr: string, for?: string, labels?: Record<string, string>, annotations?: Record<string, string> }
type PrometheusRule = Manifest & { spec: { groups: Array<{ name: string, rules: AlertRule[] }> } }

export interface Panel { id: number, title: string, gridPos: { x: number, w: number }, targets: Array<{ expr: string }> }
export interface Dashboard {
  uid: string
  panels: Panel[]
  templating: { list: Array<{ name: string, type: string, query: string | { query: string }, allValue?: string }> }
}

export const DASHBOARD_FILE = `${ROOT}k8s/components/monitoring/grafana-dashboard.json`

/** The alerting rules of the statefulset overlay's PrometheusRule (both overlays ship the same). */
export function alertRules (): AlertRule[] {
  const rule = byKind<PrometheusRule>(render('statefulset'), 'PrometheusRule')[0]
  if (rule === undefined) throw new Error('no PrometheusRule in the statefulset overlay')
  return rule.spec.groups.flatMap((group) => group.rules)
}

export function dashboard (): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard
}

/** Grafana's variables as the dashboard is first opened: namespace wsc, every pod, a 1 m rate window. */
export function expandVariables (expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$namespace', 'wsc').replaceAll('$pod', '.*')
}

/** Every PromQL query of the dashboard: each panel target, and the selector of each `label_values()` variable. */
export function dashboardQueries (): Array<{ where: string, expr: string, label?: string }> {
  const board = dashboard()
  const queries: Array<{ where: string, expr: string, label?: string }> = []
  for (const variable of board.templating.list) {
    if (variable.type !== 'query') continue
    const query = typeof variable.query === 'string' ? variable.query : variable.query.query
    const m = /^label_values\((.+),\s*([a-zA-Z_]+)\)$/.exec(query)
    if (m === null) throw new Error(`variable ${variable.name}: not a label_values() query: ${query}`)
    queries.push({ where: `variable ${variable.name}`, expr: expandVariables(m[1] as string), label: m[2] as string })
  }
  for (const panel of board.panels) {
    for (const target of panel.targets) queries.push({ where: `panel "${panel.title}"`, expr: expandVariables(target.expr) })
  }
  return queries
}

/**
 * Metrics the rules and the dashboard take from kube-prometheus-stack's exporters rather than from our
 * pods, with the labels each series carries there (kube-state-metrics v2, the kubelet's cAdvisor).
 */
export const EXTERNAL_METRICS: Record<string, { source: string, labels: string[] }> = {
  kube_pod_status_ready: { source: 'kube-state-metrics', labels: ['namespace', 'pod', 'uid', 'condition'] },
  kube_pod_container_status_restarts_total: { source: 'kube-state-metrics', labels: ['namespace', 'pod', 'uid', 'container'] },
  kube_pod_container_resource_limits: { source: 'kube-state-metrics', labels: ['namespace', 'pod', 'uid', 'container', 'node', 'resource', 'unit'] },
  container_memory_working_set_bytes: { source: 'cAdvisor', labels: ['namespace', 'pod', 'container', 'id', 'image', 'name'] },
  container_cpu_usage_seconds_total: { source: 'cAdvisor', labels: ['namespace', 'pod', 'container', 'id', 'image', 'name'] }
}

export const MiB = 1024 * 1024

/** What kube-state-metrics and cAdvisor would report of one pod at one scrape. */
export interface PodState {
  pod: string
  ready?: boolean
  restarts?: number
  workingSetBytes?: number
  /** The container's id: a restarted container is a new cAdvisor series. */
  containerId?: string
  cpuSeconds?: number
}

/** Adds the exporters' series for `pods` at `at`, with the labels of {@link EXTERNAL_METRICS}. */
export function addExternalSeries (store: SeriesStore, at: number, pods: PodState[]): void {
  for (const state of pods) {
    const pod: Labels = { namespace: 'wsc', pod: state.pod, uid: `uid-${state.pod}` }
    const ready = state.ready ?? true
    for (const condition of ['true', 'false', 'unknown']) {
      store.add({ __name__: 'kube_pod_status_ready', ...pod, condition }, at, condition === String(ready) ? 1 : 0)
    }
    const container = { ...pod, container: 'wsc' }
    store.add({ __name__: 'kube_pod_container_status_restarts_total', ...container }, at, state.restarts ?? 0)
    store.add({ __name__: 'kube_pod_container_resource_limits', ...container, node: 'node-1', resource: 'memory', unit: 'byte' }, at, 1024 * MiB)
    store.add({ __name__: 'kube_pod_container_resource_limits', ...container, node: 'node-1', resource: 'cpu', unit: 'core' }, at, 1)
    const id = state.containerId ?? `${state.pod}-1`
    const cadvisor = { namespace: 'wsc', pod: state.pod, container: 'wsc', id: `/kubepods/burstable/pod-${state.pod}/${id}`, image: 'registry.example.com/fastify-wsc:0.1.0', name: id }
    store.add({ __name__: 'container_memory_working_set_bytes', ...cadvisor }, at, state.workingSetBytes ?? 200 * MiB)
    store.add({ __name__: 'container_cpu_usage_seconds_total', ...cadvisor }, at, state.cpuSeconds ?? at / 10)
  }
}
