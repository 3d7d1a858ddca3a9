import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import type { Manifest } from './kustomize.js'
import { appContainer, byKind, OVERLAYS, podEnv, render, ROOT, type Container, type Probe } from './pod.js'

// The example app resolves `fastify-wsc` to dist/ through the package's own exports.
async function buildApp (): Promise<FastifyInstance> {
  assert.ok(existsSync(`${ROOT}dist/plugins/index.js`), 'dist/ is missing: run `npm run build` first (npm test does)')
  const { buildExampleApp } = await import('../../example/app.js')
  return buildExampleApp({ fastify: { logger: false }, wsc: { server: { nodeId: 'wsc-0' } } })
}

function probesOf (container: Container): Array<[string, Probe]> {
  return (['startupProbe', 'livenessProbe', 'readinessProbe'] as const)
    .map((kind): [string, Probe | undefined] => [kind, container[kind]])
    .filter((entry): entry is [string, Probe] => entry[1] !== undefined)
}

test('probes and the Ingress hit routes of the example app, on the port it listens on', async (t) => {
  const app = await buildApp()
  t.after(() => app.close())
  await app.ready()
  for (const overlay of OVERLAYS) {
    const resources = render(overlay)
    const container = appContainer(resources)
    const env = podEnv(container, 'wsc-0', '10.244.1.5', { 'redis/redis-password': '', 'wsc-auth/jwt-secret': 'x', 'wsc-auth/api-token': 'y' })
    // example/server.ts: listens on PORT, else WSC_NODE_PORT, else 8080; metrics on METRICS_PORT (8081).
    const listenPort = Number(env.PORT ?? env.WSC_NODE_PORT ?? 8080)
    const metricsPort = Number(env.METRICS_PORT ?? 8081)
    const portOf = (port: number | string): number | undefined => typeof port === 'number' ? port : container.ports.find((p) => p.name === port)?.containerPort

    assert.deepEqual(container.ports.map((p) => [p.name, p.containerPort]), [['http', listenPort], ['metrics', metricsPort]], overlay)
    const probes = probesOf(container)
    assert.deepEqual(probes.map(([kind, probe]) => [kind, probe.httpGet?.path]), [['startupProbe', '/health'], ['livenessProbe', '/health'], ['readinessProbe', '/ready']])
    for (const [kind, probe] of probes) {
      const path = probe.httpGet?.path ?? ''
      assert.equal(portOf(probe.httpGet?.port ?? ''), listenPort, `${overlay} ${kind}: probes the app's port`)
      const reply = await app.inject({ method: 'GET', url: path })
      assert.equal(reply.statusCode, 200, `${overlay} ${kind}: GET ${path} of a started node`)
    }

    const ingress = byKind<Manifest & { spec: { rules: Array<{ http: { paths: Array<{ path: string }> } }> } }>(resources, 'Ingress')[0]
    for (const { path } of ingress?.spec.rules.flatMap((rule) => rule.http.paths) ?? []) {
      assert.ok(app.hasRoute({ method: 'GET', url: path }), `${overlay}: the Ingress path ${path} is a route of the app`)
    }
  }
})
