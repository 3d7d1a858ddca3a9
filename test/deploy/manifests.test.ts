import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { parseAllDocuments, parse as parseYaml } from 'yaml'
import { CONFIG_KEYS, loadConfig } from '../../lib/config.js'
import { resolveNodeIdentity } from '../../lib/node-identity.js'
import { productionRefusal } from '../../example/production.js'
import { unknownFields, validateSchema } from './kube-schema.js'
import { manifestId, type Manifest } from './kustomize.js'
import {
  appContainer, byKind, durationSeconds, envReadByCode, OVERLAYS, podEnv, preStopSeconds, render,
  ROOT, VARIANTS, workloadOf, type Container
} from './pod.js'

const { version } = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string }

interface ServiceSpec { selector?: Record<string, string>, clusterIP?: string, type?: string, ports: Array<{ name: string, port: number, targetPort: number | string, nodePort?: number }>, sessionAffinity?: string, externalTrafficPolicy?: string }
type Service = Manifest & { spec: ServiceSpec }

function containerPort (container: Container, port: number | string): number {
  if (typeof port === 'number') return port
  const named = container.ports.find((p) => p.name === port)
  assert.ok(named, `container has no port named ${port}`)
  return named.containerPort
}

function selects (selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value)
}

test('our renderer builds the same objects as kubectl kustomize, for both overlays and every variant', (t) => {
  assert.equal(spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status, 0, 'kubectl is not installed (the machine image has it): the renderer cannot be cross-checked')
  const dir = mkdtempSync(join(tmpdir(), 'wsc-kustomize-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  for (const overlay of OVERLAYS) {
    for (const variant of [undefined, ...VARIANTS]) {
      // kustomize refuses absolute paths: reach the overlay and the component relative to a temp root.
      const kustomization = [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        `  - ${relative(dir, `${ROOT}k8s/overlays/${overlay}`)}`,
        ...(variant === undefined ? [] : ['components:', `  - ${relative(dir, `${ROOT}k8s/components/${variant}`)}`])
      ].join('\n')
      writeFileSync(join(dir, 'kustomization.yaml'), kustomization)
      const output = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' })
      const theirs = new Map(parseAllDocuments(output).map((doc) => doc.toJS() as Manifest).map((m) => [manifestId(m), m]))
      const ours = new Map(render(overlay, variant).map((m) => [manifestId(m), m]))
      assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort(), `${overlay}+${variant ?? 'none'}: objects`)
      for (const [id, manifest] of ours) assert.ok(isDeepStrictEqual(manifest, theirs.get(id)), `${overlay}+${variant ?? 'none'}: ${id} differs from kubectl kustomize`)
    }
  }
})

test('every manifest of both overlays and every variant validates against the Kubernetes API schemas, with no unknown field', async () => {
  const all: Manifest[] = []
  const context: string[] = []
  for (const overlay of OVERLAYS) {
    for (const variant of [undefined, ...VARIANTS]) {
      const resources = render(overlay, variant)
      for (const resource of resources) await validateSchema(resource)
      all.push(...resources)
      context.push(...resources.map(() => `${overlay}+${variant ?? 'none'}`))
    }
  }
  // One type-check for every render: a compiler run costs about a second.
  assert.deepEqual(unknownFields(all, context), [])
})

test('the schema check rejects what the API server would (a misspelt field, a string where a number goes)', async () => {
  const resources = structuredClone(render('statefulset'))
  const container = appContainer(resources) as Container & { readinessProbe: Record<string, unknown> }
  container.readinessProbe.periodSecond = 5
  assert.match(unknownFields(resources).join('\n'), /StatefulSet\/wsc: .*periodSecond/)
  const workload = workloadOf(resources) as unknown as { spec: { replicas: unknown } }
  workload.spec.replicas = '3'
  await assert.rejects(validateSchema(workloadOf(resources)), /replicas must be integer/)
})

test('each overlay is complete: workload, Services, Ingress, HPA, PDB, ConfigMap, monitoring, all in namespace wsc', () => {
  const expected = {
    statefulset: ['ConfigMap/wsc/wsc-config', 'ConfigMap/wsc/wsc-grafana-dashboard', 'HorizontalPodAutoscaler/wsc/wsc-hpa', 'Ingress/wsc/wsc-ingress', 'PodDisruptionBudget/wsc/wsc', 'PrometheusRule/wsc/wsc', 'Service/wsc/wsc', 'Service/wsc/wsc-headless', 'ServiceMonitor/wsc/wsc', 'StatefulSet/wsc/wsc'],
    deployment: ['ConfigMap/wsc/wsc-config', 'ConfigMap/wsc/wsc-grafana-dashboard', 'Deployment/wsc/wsc', 'HorizontalPodAutoscaler/wsc/wsc-hpa', 'Ingress/wsc/wsc-ingress', 'PodDisruptionBudget/wsc/wsc', 'PrometheusRule/wsc/wsc', 'Service/wsc/wsc', 'ServiceMonitor/wsc/wsc']
  }
  for (const overlay of OVERLAYS) {
    const resources = render(overlay)
    assert.deepEqual(resources.map(manifestId).sort(), expected[overlay], overlay)
    const workload = workloadOf(resources)
    assert.equal(appContainer(resources).image, `registry.example.com/fastify-wsc:${version}`, `${overlay}: image tag follows package.json`)

    const hpa = byKind(resources, 'HorizontalPodAutoscaler')[0] as Manifest & { spec: Record<string, unknown> }
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: workload.kind, name: workload.metadata.name })
    assert.equal(hpa.spec.minReplicas, 3)
    assert.equal(hpa.spec.maxReplicas, 10)
    assert.deepEqual(hpa.spec.metrics, [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }])
    assert.ok(appContainer(resources).env !== undefined && (workload.spec.template.spec.containers[0] as unknown as { resources: { requests: { cpu: string } } }).resources.requests.cpu, 'the HPA needs a CPU request')

    const service = byKind<Service>(resources, 'Service').find((s) => s.metadata.name === 'wsc')
    assert.equal(service?.spec.type, 'ClusterIP')
    assert.equal(service?.spec.sessionAffinity, 'ClientIP')
    const ingress = byKind(resources, 'Ingress')[0] as Manifest
    const annotations = ingress.metadata.annotations ?? {}
    assert.equal(annotations['nginx.ingress.kubernetes.io/affinity'], 'cookie')
    assert.ok(Number(annotations['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 3600)
    assert.ok(Number(annotations['nginx.ingress.kubernetes.io/proxy-send-timeout']) >= 3600)
  }
  const headless = byKind<Service>(render('statefulset'), 'Service').find((s) => s.metadata.name === workloadOf(render('statefulset')).spec.serviceName)
  assert.equal(headless?.spec.clusterIP, 'None', 'the StatefulSet is governed by a headless Service')
  for (const variant of VARIANTS) {
    const types = byKind<Service>(render('deployment', variant), 'Service').map((s) => s.spec.type ?? 'ClusterIP')
    assert.ok(types.includes(variant === 'nodeport' ? 'NodePort' : 'LoadBalancer'), variant)
  }
})

test('kubectl delete -k leaves the namespace, and with it the Redis, MySQL and Secrets of the prerequisites', () => {
  for (const overlay of OVERLAYS) {
    for (const variant of [undefined, ...VARIANTS]) {
      const resources = render(overlay, variant)
      assert.deepEqual(byKind(resources, 'Namespace').map(manifestId), [], `${overlay}+${variant ?? 'none'}: no Namespace object`)
      for (const resource of resources) assert.equal(resource.metadata.namespace, 'wsc', `${manifestId(resource)} is in namespace wsc`)
    }
  }
})

test('selectors match the pod labels, and Services, Ingress and ServiceMonitor name ports that exist', () => {
  for (const overlay of OVERLAYS) {
    for (const variant of [undefined, ...VARIANTS]) {
      const what = `${overlay}+${variant ?? 'none'}`
      const resources = render(overlay, variant)
      const workload = workloadOf(resources)
      const labels = workload.spec.template.metadata.labels
      const container = appContainer(resources)
      assert.ok(selects(workload.spec.selector.matchLabels, labels), `${what}: workload selector`)
      const services = byKind<Service>(resources, 'Service')
      for (const service of services) {
        assert.ok(service.spec.selector !== undefined && selects(service.spec.selector, labels), `${what}: Service ${service.metadata.name} selects the pods`)
        for (const port of service.spec.ports) containerPort(container, port.targetPort)
      }
      for (const pdb of byKind<Manifest & { spec: { selector: { matchLabels: Record<string, string> } } }>(resources, 'PodDisruptionBudget')) {
        assert.ok(selects(pdb.spec.selector.matchLabels, labels), `${what}: PDB selects the pods`)
      }
      const ingress = byKind<Manifest & { spec: { rules: Array<{ http: { paths: Array<{ path: string, backend: { service: { name: string, port: { name: string } } } }> } }> } }>(resources, 'Ingress')[0]
      const paths = ingress?.spec.rules.flatMap((rule) => rule.http.paths) ?? []
      assert.ok(paths.some((p) => p.path === '/ws'), `${what}: the Ingress reaches /ws`)
      for (const path of paths) {
        const target = services.find((s) => s.metadata.name === path.backend.service.name)
        assert.ok(target?.spec.ports.some((p) => p.name === path.backend.service.port.name), `${what}: Ingress backend ${path.backend.service.name}:${path.backend.service.port.name}`)
      }
      const monitor = byKind<Manifest & { spec: { selector: { matchLabels: Record<string, string> }, endpoints: Array<{ port: string, path: string }> } }>(resources, 'ServiceMonitor')[0]
      assert.ok(monitor, what)
      const scraped = services.filter((s) => selects(monitor.spec.selector.matchLabels, s.metadata.labels ?? {}))
      assert.deepEqual(scraped.map((s) => s.metadata.name), ['wsc'], `${what}: exactly one Service is scraped, or every pod is scraped twice`)
      for (const endpoint of monitor.spec.endpoints) {
        assert.ok(scraped[0]?.spec.ports.some((p) => p.name === endpoint.port), `${what}: ServiceMonitor port ${endpoint.port}`)
        assert.equal(endpoint.path, '/metrics')
      }
      for (const service of services.filter((s) => s.spec.type === 'NodePort' || s.spec.type === 'LoadBalancer')) {
        if (service.spec.type === 'LoadBalancer') assert.ok(service.spec.ports.every((p) => p.targetPort !== 'metrics' && p.targetPort !== 8081), `${what}: metrics never on a public load balancer`)
      }
    }
  }
})

test('the NodePort behind the external nginx answers on every node and balances its connections over the pods', () => {
  const site = readFileSync(`${ROOT}k8s/nginx/conf.d/wsc.conf`, 'utf8')
  for (const overlay of OVERLAYS) {
    const service = byKind<Service>(render(overlay, 'nodeport'), 'Service').find((s) => s.spec.type === 'NodePort')
    assert.ok(service, overlay)
    // nginx lists every node (not only those running a pod): with Local, a node without a pod drops them.
    const nodePorts = service.spec.ports.map((p) => p.nodePort)
    for (const [, port] of site.matchAll(/^\s*server \S+:(\d+)/gm)) assert.ok(nodePorts.includes(Number(port)), `nginx's upstream port ${port ?? ''} is a node port`)
    assert.equal(service.spec.externalTrafficPolicy ?? 'Cluster', 'Cluster', `${overlay}: every node forwards to a pod`)
    // Every connection arrives from nginx's address: ClientIP affinity would send them all to one pod.
    assert.notEqual(service.spec.sessionAffinity, 'ClientIP', `${overlay}: no ClientIP affinity behind nginx`)
  }
})

test('both overlays run the same pod, except that the node id comes from POD_NAME or HOSTNAME', () => {
  const [sts, deploy] = OVERLAYS.map((overlay) => structuredClone(workloadOf(render(overlay)).spec.template))
  for (const template of [sts, deploy]) {
    const container = template?.spec.containers[0] as Container
    container.env = container.env.filter((v) => v.name !== 'POD_NAME' && v.name !== 'HOSTNAME')
  }
  assert.deepEqual(deploy, sts)
})

test('node ids: StatefulSet pods are wsc-0, wsc-1, … from POD_NAME; Deployment pods use HOSTNAME; both advertise the pod IP', () => {
  const cases = [
    { overlay: 'statefulset' as const, pod: 'wsc-1', source: 'POD_NAME' },
    { overlay: 'deployment' as const, pod: 'wsc-7d8f9c-abc12', source: 'HOSTNAME' }
  ]
  for (const { overlay, pod, source } of cases) {
    const env = podEnv(appContainer(render(overlay)), pod, '10.244.1.5', { 'redis/redis-password': '', 'wsc-auth/jwt-secret': 'x', 'wsc-auth/api-token': 'y' })
    // The kubelet sets HOSTNAME to the pod name in every pod; POD_NAME comes first where it is set.
    const config = loadConfig({ env: { HOSTNAME: pod, ...env, WSC_CONFIG: '' } })
    const identity = resolveNodeIdentity(config.server)
    assert.deepEqual(identity, { nodeId: pod, source: 'option', ip: '10.244.1.5', port: 8080 }, overlay)
    assert.equal(env[source], pod, `${overlay}: the pod name comes from ${source}`)
  }
})

test('every env var the manifests set is read by the config loader, node identity or the example app', () => {
  const readers = envReadByCode()
  for (const overlay of OVERLAYS) {
    for (const variable of appContainer(render(overlay)).env) {
      assert.ok(readers.has(variable.name), `${overlay}: ${variable.name} is set but nothing reads it`)
    }
  }
  // The drain window the grace-period check reads from the pods is the one the config loader reads.
  assert.deepEqual(CONFIG_KEYS.find((spec) => spec.key === 'drain.window')?.env, ['WSC_DRAIN_WINDOW'])
})

/** The pod's configuration as the example app loads it: the container's env and the mounted ConfigMap. */
function podConfig (overlay: typeof OVERLAYS[number], dir: string): { env: NodeJS.ProcessEnv, file: Record<string, unknown>, config: ReturnType<typeof loadConfig> } {
  const resources = render(overlay)
  const env = podEnv(appContainer(resources), 'wsc-0', '10.244.1.5', { 'redis/redis-password': 's3cret', 'wsc-auth/jwt-secret': 'x', 'wsc-auth/api-token': 'y' })
  const configMap = byKind<Manifest & { data: Record<string, string> }>(resources, 'ConfigMap').find((c) => c.metadata.name === 'wsc-config')
  const text = configMap?.data['config.yaml'] ?? ''
  const path = join(dir, `${overlay}.yaml`)
  writeFileSync(path, text)
  return { env, file: parseYaml(text) as Record<string, unknown>, config: loadConfig({ env: { ...env, WSC_CONFIG: path } }) }
}

test('shutdown budget: preStop sleep + drain.timeout fit in terminationGracePeriodSeconds with a margin, so the process exits before SIGKILL', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsc-budget-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const margin = 5
  for (const overlay of OVERLAYS) {
    const resources = render(overlay)
    const container = appContainer(resources)
    const grace = workloadOf(resources).spec.template.spec.terminationGracePeriodSeconds ?? 30
    const { env, file, config } = podConfig(overlay, dir)
    // drain.timeout as the pod gets it: its env var, else config.yaml, else CONFIG_KEYS' default (the
    // deployments' default where the key has one).
    const spec = CONFIG_KEYS.find((key) => key.key === 'drain.timeout')
    assert.ok(spec !== undefined)
    const fromEnv = ([] as string[]).concat(spec.env ?? []).map((name) => env[name]).find((value) => value !== undefined && value !== '')
    const fromFile = (file.drain as Record<string, unknown> | undefined)?.timeout
    const fallback = (spec as { deployDefault?: unknown }).deployDefault ?? spec.default
    assert.equal(typeof fallback, 'number')
    const timeout = fromEnv !== undefined ? durationSeconds(fromEnv) : fromFile !== undefined ? durationSeconds(String(fromFile)) : (fallback as number) / 1000
    assert.equal(config.drain.timeout / 1000, timeout, `${overlay}: loadConfig resolves drain.timeout the same way`)
    const preStop = preStopSeconds(container)
    assert.ok(preStop + timeout <= grace - margin, `${overlay}: ${preStop} s preStop + ${timeout} s drain.timeout <= ${grace} s grace - ${margin} s`)
    // And the drain itself fits in drain.timeout (loadConfig refuses less than 2 s for close handshakes).
    assert.ok((config.drain.delay + config.drain.window) / 1000 + 2 < timeout, `${overlay}: drain.delay + drain.window + 2 s < drain.timeout`)
    assert.ok(grace <= 30, 'DESIGN.md: the process exits before terminationGracePeriodSeconds (30 s)')
    assert.equal(container.lifecycle?.preStop?.exec?.command[0], '/bin/sh', 'the image has /bin/sh (node:20-bookworm-slim)')
  }
})

test('config.yaml of the ConfigMap loads through loadConfig with the pod env, mounted where WSC_CONFIG points', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsc-configmap-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  for (const overlay of OVERLAYS) {
    const resources = render(overlay)
    const container = appContainer(resources)
    const podSpec = workloadOf(resources).spec.template.spec
    const env = podEnv(container, 'wsc-0', '10.244.1.5', { 'redis/redis-password': 's3cret', 'wsc-auth/jwt-secret': 'x', 'wsc-auth/api-token': 'y' })

    const mount = container.volumeMounts?.find((m) => env.WSC_CONFIG?.startsWith(`${m.mountPath}/`))
    assert.ok(mount, `${overlay}: WSC_CONFIG=${env.WSC_CONFIG} is inside a volume mount`)
    const volume = podSpec.volumes?.find((v) => v.name === mount.name)
    const configMap = byKind<Manifest & { data: Record<string, string> }>(resources, 'ConfigMap').find((c) => c.metadata.name === volume?.configMap?.name)
    const key = (env.WSC_CONFIG ?? '').slice(mount.mountPath.length + 1)
    const text = configMap?.data[key]
    assert.ok(text, `${overlay}: ConfigMap ${volume?.configMap?.name} has ${key}`)

    const file = join(dir, 'config.yaml')
    writeFileSync(file, text)
    const config = loadConfig({ env: { ...env, WSC_CONFIG: file } })
    assert.equal(config.server.nodeIp, '10.244.1.5')
    assert.equal(config.server.nodePort, 8080)
    assert.equal(config.redis.addr, 'redis-master:6379')
    assert.equal(config.redis.password, 's3cret')
    assert.equal(config.distributed.heartbeatInterval, 5000)
    assert.equal(config.websocket.maxConnections, 10000)
    // The file alone, without the env vars the pod sets, says the same.
    const fileOnly = loadConfig({ env: { POD_IP: '10.244.1.5', WSC_CONFIG: file } })
    assert.equal(fileOnly.redis.addr, 'redis-master:6379')
    assert.equal(fileOnly.redis.password, '')
  }
})

test('the Secrets the pod reads are required: a missing one stops the pod by name, never a pod without a password, with development tokens or an open /api', () => {
  // The image runs the example with NODE_ENV=production, which refuses to start without both tokens.
  const nodeEnv = /^ENV\s+NODE_ENV=(\S+)$/m.exec(readFileSync(`${ROOT}Dockerfile`, 'utf8'))?.[1]
  assert.equal(nodeEnv, 'production')
  const secrets = { 'redis/redis-password': '', 'wsc-auth/jwt-secret': 'x', 'wsc-auth/api-token': 'y' }
  for (const overlay of OVERLAYS) {
    const container = appContainer(render(overlay))
    const env = container.env
    assert.deepEqual(env.find((v) => v.name === 'REDIS_PASSWORD')?.valueFrom?.secretKeyRef, { name: 'redis', key: 'redis-password' }, 'the Secret the Bitnami chart creates')
    for (const [name, key] of [['WSC_JWT_SECRET', 'jwt-secret'], ['WSC_API_TOKEN', 'api-token']]) {
      assert.deepEqual(env.find((v) => v.name === name)?.valueFrom?.secretKeyRef, { name: 'wsc-auth', key }, `${overlay}: ${name} from Secret wsc-auth, required`)
    }
    for (const missing of Object.keys(secrets)) {
      const given = Object.fromEntries(Object.entries(secrets).filter(([ref]) => ref !== missing))
      assert.throws(() => podEnv(container, 'wsc-0', '10.0.0.1', given), new RegExp(`required secret ${missing}\\b`), `${overlay}: without ${missing} the pod does not start`)
    }
    assert.equal(productionRefusal({ ...podEnv(container, 'wsc-0', '10.0.0.1', secrets), NODE_ENV: nodeEnv }), undefined, `${overlay}: the image starts with what the pod gets`)
  }
})
