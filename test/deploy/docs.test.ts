import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { CONFIG_KEYS } from '../../lib/config.js'
import type { Manifest } from './kustomize.js'
import { documentedMetrics } from './metrics.js'
import { alertRules, dashboardQueries } from './monitoring.js'
import { guideManifests, manifestDifferences, nginxDifferences, PAIRS, type Difference } from './original-guide.js'
import { metricNames, parse } from './promql.js'
import { appContainer, byKind, envReadByCode, OVERLAYS, render, ROOT, VARIANTS, workloadOf } from './pod.js'

// docs/deploy-kubernetes.md must be true of our artifacts: its paths, objects, env vars, keys,
// commands and metrics are checked against k8s/, the code and package.json.

const DOC = readFileSync(`${ROOT}docs/deploy-kubernetes.md`, 'utf8')
const CODE = [...DOC.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1] ?? '').join('\n')
const everything: Manifest[] = OVERLAYS.flatMap((overlay) => [undefined, ...VARIANTS].flatMap((variant) => render(overlay, variant)))

/** Services the Redis and MySQL charts create (prerequisites, not in k8s/). */
const PREREQUISITE_SERVICES = ['redis-master', 'redis', 'redis-cluster', 'mysql']

/** The Redis names of DESIGN.md's Redis contract (prefix `wsc:`). */
const REDIS_NAMES = [/^wsc:nodes:(\*|[a-z0-9-]+|<id>)$/, /^wsc:node-index$/, /^wsc:presence:\{[^}]+\}$/, /^wsc:node:<id>$/, /^wsc:room:<room>$/, /^wsc:broadcast$/, /^wsc:\*$/]

test('paths the guide names exist, and every kubectl apply -k names an overlay', () => {
  for (const [path] of DOC.matchAll(/\bk8s\/[A-Za-z0-9_./-]*[A-Za-z0-9_]/g)) assert.ok(existsSync(`${ROOT}${path}`), `${path} exists`)
  for (const [, dir] of DOC.matchAll(/kubectl apply -k ([^\s`]+)/g)) assert.ok(existsSync(`${ROOT}${dir ?? ''}/kustomization.yaml`), `${dir ?? ''} is a kustomization`)
  for (const [, component] of DOC.matchAll(/- \.\.\/\.\.\/components\/([a-z]+)/g)) {
    assert.ok(existsSync(`${ROOT}k8s/components/${component ?? ''}/kustomization.yaml`), `component ${component ?? ''}`)
    for (const overlay of OVERLAYS) assert.ok(readFileSync(`${ROOT}k8s/overlays/${overlay}/kustomization.yaml`, 'utf8').includes(`- ../../components/${component ?? ''}`), `${overlay} lists ${component ?? ''}`)
  }
  for (const [, script] of DOC.matchAll(/npm run ([a-z:]+)/g)) {
    const { scripts } = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { scripts: Record<string, string> }
    assert.ok(scripts[script ?? ''], `npm run ${script ?? ''}`)
  }
})

test('objects the guide names exist in the rendered manifests', () => {
  const kinds: Record<string, string> = { statefulset: 'StatefulSet', deployment: 'Deployment', hpa: 'HorizontalPodAutoscaler', pdb: 'PodDisruptionBudget', service: 'Service', svc: 'Service', endpoints: 'Service', ingress: 'Ingress', configmap: 'ConfigMap' }
  for (const [, kind = '', name = ''] of CODE.matchAll(/kubectl [a-z -]*?\b(statefulset|deployment|hpa|pdb|service|svc|endpoints|ingress|configmap)[/ ]([a-z0-9-]+)/g)) {
    assert.ok(everything.some((m) => m.kind === kinds[kind] && m.metadata.name === name), `${kind} ${name} is in k8s/`)
  }
  for (const [, kind = '', name = ''] of DOC.matchAll(/\b(StatefulSet|Deployment|HorizontalPodAutoscaler|PodDisruptionBudget|Service|Ingress|ConfigMap|ServiceMonitor|PrometheusRule) `([a-z0-9-]+)`/g)) {
    if (kind === 'Service' && PREREQUISITE_SERVICES.includes(name)) continue
    assert.ok(everything.some((m) => m.kind === kind && m.metadata.name === name), `${kind} ${name} is in k8s/`)
  }
  for (const [, selector = ''] of CODE.matchAll(/-l ([a-z]+=[a-z0-9-]+)/g)) {
    const [key = '', value] = selector.split('=')
    for (const overlay of OVERLAYS) assert.equal(workloadOf(render(overlay)).spec.template.metadata.labels[key], value, `-l ${selector} selects the pods`)
  }
  // Secrets and their keys, as the pods reference them.
  const refs = OVERLAYS.flatMap((overlay) => appContainer(render(overlay)).env.map((v) => v.valueFrom?.secretKeyRef).filter((r) => r !== undefined))
  for (const ref of refs) assert.match(DOC, new RegExp(`Secret \`${ref.name}\`[^.]*key \`${ref.key}\``), `the guide says where ${ref.name}/${ref.key} comes from`)
  for (const [, name = ''] of CODE.matchAll(/kubectl (?:get|create) secret (?:generic )?(?:--namespace wsc |-n wsc )?([a-z0-9-]+)(?= )/g)) {
    assert.ok(refs.some((r) => r.name === name), `Secret ${name} is one the pods use`)
  }
})

test('every env var the guide names is read by the code or set by the kubelet', () => {
  const readers = envReadByCode()
  for (const [name] of DOC.matchAll(/\b(?:WSC|REDIS|MYSQL|POD|NODE|METRICS)_[A-Z0-9_]+\b|\bHOSTNAME\b/g)) {
    if (name === 'POD_NAMESPACE' || name.startsWith('WSC_ERR_')) continue // what we do not set; error codes
    assert.ok(readers.has(name), `${name} is read by the code`)
  }
  for (const [, key = ''] of DOC.matchAll(/`((?:server|redis|distributed|websocket|store|mysql)\.[a-z_]+)`/g)) {
    assert.ok(CONFIG_KEYS.some((spec) => spec.key === key), `${key} is a configuration key`)
  }
  // The table of env vars the manifests set is the manifests' list.
  const rows = DOC.slice(DOC.indexOf('## 5.'), DOC.indexOf('## 6.')).split('\n').filter((line) => line.startsWith('| `'))
  const documented = new Set(rows.flatMap((row) => [...(row.split('|')[1] ?? '').matchAll(/`([A-Z_]+)`/g)].map((m) => m[1] as string)))
  for (const overlay of OVERLAYS) {
    for (const { name } of appContainer(render(overlay)).env) assert.ok(documented.has(name), `${overlay}: ${name} is in the guide's env table`)
  }
})

test('the guide calls a Secret key required or optional as the pods reference it', () => {
  const table = DOC.slice(DOC.indexOf('## 5.'), DOC.indexOf('## 6.'))
  for (const overlay of OVERLAYS) {
    for (const { name, valueFrom } of appContainer(render(overlay)).env) {
      const ref = valueFrom?.secretKeyRef
      if (ref === undefined) continue
      const row = table.split('\n').find((line) => line.startsWith(`| \`${name}\` |`)) ?? ''
      assert.match(row, new RegExp(`Secret \`${ref.name}\`, key \`${ref.key}\`, ${ref.optional === true ? 'optional' : 'required'} \\|`), `${overlay}: the env table's ${name} row`)
      if (ref.optional !== true) assert.doesNotMatch(DOC, new RegExp(`\`${ref.key}\`[^.|\\n]*\\boptional\\b`), `nothing calls ${ref.key} optional`)
    }
  }
})

test('the guide\'s way to find errors in the logs matches an error line as the app writes it', () => {
  const grep = /^kubectl logs [^|\n]*\| (grep [^#\n]*?)\s*(?:#.*)?$/m.exec(CODE)?.[1]
  assert.ok(grep !== undefined, 'a kubectl logs … | grep command')
  // pino's line with level names (example/app.ts); test/integration/example.test.ts runs it on a live node's log.
  const line = '{"level":"error","time":1,"pid":1,"hostname":"wsc-0","msg":"unavailable: Redis: Connection is closed."}\n'
  assert.equal(spawnSync('sh', ['-c', grep], { input: line, encoding: 'utf8' }).stdout, line)
  assert.equal(spawnSync('sh', ['-c', grep], { input: '{"level":"info","msg":"closing"}\n', encoding: 'utf8' }).stdout, '')
})

test('redis-cli commands use the keys and channels of the Redis contract, and never KEYS', () => {
  assert.doesNotMatch(CODE, /^\s*>?\s*KEYS\b/im, 'KEYS blocks Redis: the guide uses ZRANGE, SCAN and GET')
  const redisLines = CODE.split('\n').filter((line) => /^\s*> /.test(line))
  assert.ok(redisLines.length >= 4)
  for (const line of redisLines) {
    const command = line.replace(/#.*$/, '').trim().slice(2)
    for (const [name] of command.matchAll(/\bwsc:\S+/g)) assert.ok(REDIS_NAMES.some((re) => re.test(name)), `${name} is a name of the Redis contract`)
  }
  for (const command of ['GET wsc:nodes:wsc-0', 'ZRANGE wsc:node-index 0 -1 WITHSCORES', 'PUBSUB CHANNELS wsc:*']) {
    assert.ok(redisLines.some((line) => line.includes(command)), `the guide shows ${command}`)
  }
})

test('commands run inside our pods use only what the image has', () => {
  for (const [line] of CODE.matchAll(/kubectl exec [^\n]*\bwsc-\d[^\n]*/g)) {
    assert.doesNotMatch(line, /\b(curl|wget|nc|bash)\b/, `${line}: node:20-bookworm-slim has no such tool`)
  }
})

test('the guide lists every metric the alerts and the dashboard use, every alert we ship, and the numbers it quotes match the manifests', () => {
  const documented = documentedMetrics()
  const used = [...alertRules().map((r) => r.expr), ...dashboardQueries().map((q) => q.expr)].flatMap((expr) => metricNames(parse(expr)))
  for (const name of new Set(used.filter((n) => n.startsWith('wsc_')).map((n) => n.replace(/_(bucket|sum|count)$/, '')))) {
    const labels = documented.get(name)?.labels ?? []
    assert.match(DOC, new RegExp(`\`${name}${labels.length === 0 ? '' : `\\{${labels.join(',')}\\}`}\``), `the guide lists ${name}`)
  }
  // Names of k8s/nginx (upstreams, the TLS session cache) are not metrics.
  const nginxNames = [...readFileSync(`${ROOT}k8s/nginx/conf.d/wsc.conf`, 'utf8').matchAll(/\bwsc_[a-z_]+/g)].map((m) => m[0])
  for (const [name] of DOC.matchAll(/\bwsc_[a-z_]+/g)) assert.ok(documented.has(name) || nginxNames.includes(name), `${name} is a metric docs/metrics.md documents`)
  const rule = byKind<Manifest & { spec: { groups: Array<{ rules: Array<{ alert: string }> }> } }>(render('statefulset'), 'PrometheusRule')[0]
  for (const { alert } of rule?.spec.groups.flatMap((g) => g.rules) ?? []) assert.match(DOC, new RegExp(`\`${alert}\``), alert)

  const resources = render('statefulset')
  const container = appContainer(resources) as ReturnType<typeof appContainer> & { resources: { requests: Record<string, string>, limits: Record<string, string> } }
  assert.match(DOC, new RegExp(`requests \`cpu: ${container.resources.requests.cpu}\`, \`memory: ${container.resources.requests.memory}\``))
  assert.match(DOC, new RegExp(`limits \`cpu: "${container.resources.limits.cpu}"\`, \`memory: ${container.resources.limits.memory}\``))
  assert.match(DOC, new RegExp(`terminationGracePeriodSeconds: ${workloadOf(resources).spec.template.spec.terminationGracePeriodSeconds}\``))
  for (const { name, value } of container.env) {
    if (value !== undefined) assert.match(DOC, new RegExp(`\\| \`${name}\` \\| \`${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\``), `the guide's env table gives ${name} = ${value}`)
  }
  assert.match(DOC, /`preStop` hook sleeps 10 s/)
  assert.equal(container.lifecycle?.preStop?.exec?.command.at(-1), 'sleep 10')
})

/** The section "Differences from the original guide": its tables' rows and its code spans. */
function differencesSection (): { rows: string[][], spans: string[] } {
  const start = DOC.search(/^## \d+\. Differences from the original guide$/m)
  assert.ok(start >= 0, 'the guide has a section "Differences from the original guide"')
  const end = DOC.indexOf('\n## ', start + 1)
  const section = DOC.slice(start, end < 0 ? undefined : end)
  const rows = section.split('\n').filter((line) => line.startsWith('| ') && !/^\|[-| ]+\|$/.test(line))
    .map((line) => line.slice(1, -1).split(/(?<!\\)\|/).map((cell) => cell.trim()))
  return { rows, spans: [...section.replace(/```[\s\S]*?```/g, '').matchAll(/`([^`\n]+)`/g)].map((m) => m[1] as string) }
}

// Words that name structure rather than a setting: a span made only of these explains nothing.
const STRUCTURAL = new Set(['spec', 'template', 'metadata', 'containers', 'wsc', 'env', 'name', 'value', 'valueFrom', 'data', 'labels', 'annotations', 'ports', 'http', 'paths', 'rules', 'backend', 'service', 'port'])

/**
 * Whether a code span names a difference. `field: value` (YAML) or `directive args` (nginx) names a
 * field ending in `field` whose value, the guide's or ours, is `value`; any other span must appear in
 * the field's path between separators (`.`, `/`) and hold a word that is not mere structure.
 */
function names (span: string, difference: Difference): boolean {
  const path = difference.path.join('.')
  const last = difference.path.at(-1) ?? ''
  const endsWith = (field: string): boolean => path === field || path.endsWith(`.${field}`) || path.endsWith(`/${field}`)
  const values = [difference.guide, difference.ours].flatMap((v) => Array.isArray(v) ? v.map(String) : [typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v)])
  const pair = /^([\w./-]+): (.+)$/.exec(span)
  if (pair !== null && endsWith(pair[1] ?? '') && values.includes((pair[2] ?? '').replace(/^"(.*)"$/, '$1'))) return true
  const directive = /^([a-z_]+) (.+)$/.exec(span)
  if (directive !== null && directive[1] === last && values.includes(directive[2] ?? '')) return true
  if (span.split(/[.\s/=]+/).every((word) => word === '' || STRUCTURAL.has(word))) return false
  for (let i = path.indexOf(span); i >= 0; i = path.indexOf(span, i + 1)) {
    const before = path[i - 1]
    const after = path[i + span.length]
    if ((before === undefined || before === '.' || before === '/') && (after === undefined || after === '.' || after === '/')) return true
  }
  return false
}

test('"Differences from the original guide" names every field of its manifests and nginx site that k8s/ changes, drops or adds, each with a reason', () => {
  const { rows, spans } = differencesSection()
  assert.ok(rows.length > 0)
  for (const row of rows) {
    assert.ok(row.length >= 3 && row.every((cell) => cell !== ''), `a row says what the guide had, what k8s/ has and why: ${row.join(' | ')}`)
  }
  const unexplained = [...manifestDifferences(), ...nginxDifferences()]
    .filter((difference) => !spans.some((span) => names(span, difference)))
    .map((d) => `${d.object}: ${d.path.join('.')} (${JSON.stringify(d.guide)} → ${JSON.stringify(d.ours)})`)
  assert.deepEqual(unexplained, [], 'every difference is named in the section')
})

test('an operator coming from the original guide finds its objects under the guide\'s names, so apply updates them instead of adding second ones', () => {
  const ours = everything.map((m) => `${m.kind}/${m.metadata.name}`)
  const { spans } = differencesSection()
  for (const { file } of PAIRS) {
    for (const manifest of guideManifests(file)) {
      const id = `${manifest.kind}/${manifest.metadata.name}`
      const renamed = PAIRS.find((p) => p.file === file && p.kind === manifest.kind && p.name === manifest.metadata.name && p.ours !== p.name)
      if (renamed !== undefined) assert.ok(spans.includes(`name: ${renamed.ours}`), `${file}: the rename of ${id} to ${renamed.ours} is explained`)
      else assert.ok(ours.includes(id), `${file}: ${id} exists in k8s/ under the guide's name`)
    }
  }
})

test('operations.md\'s Kubernetes snippets are what k8s/ sets: probes, preStop, grace period, drain env vars, and a ServiceMonitor', () => {
  const ops = readFileSync(`${ROOT}docs/operations.md`, 'utf8')
  const blocks = [...ops.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => parseYaml(m[1] ?? '') as unknown)
  const seen = new Set<string>()
  for (const overlay of OVERLAYS) {
    const resources = render(overlay)
    const container = appContainer(resources) as ReturnType<typeof appContainer> & Record<string, unknown>
    const walk = (node: unknown): void => {
      if (node === null || typeof node !== 'object') return
      if (Array.isArray(node)) return node.forEach(walk)
      for (const [key, value] of Object.entries(node)) {
        if (['startupProbe', 'livenessProbe', 'readinessProbe', 'lifecycle'].includes(key)) assert.deepEqual(value, container[key], `${overlay}: operations.md's ${key}`)
        else if (key === 'terminationGracePeriodSeconds') assert.equal(value, workloadOf(resources).spec.template.spec.terminationGracePeriodSeconds, `${overlay}: ${key}`)
        else if (key === 'env') for (const { name, value: v } of value as Array<{ name: string, value: string }>) assert.equal(v, container.env.find((e) => e.name === name)?.value, `${overlay}: ${name}`)
        else { walk(value); continue }
        seen.add(key)
      }
    }
    blocks.forEach(walk)
  }
  assert.deepEqual([...seen].sort(), ['env', 'lifecycle', 'livenessProbe', 'readinessProbe', 'startupProbe', 'terminationGracePeriodSeconds'])
  assert.doesNotMatch(ops, /PodMonitor|prometheus\.io\/scrape/, 'k8s/ scrapes through a ServiceMonitor')
  assert.match(ops, /ServiceMonitor `wsc`/)
})
