import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { CONFIG_KEYS } from '../../lib/config.js'
import { renderKustomization, type Manifest } from './kustomize.js'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export const OVERLAYS = ['statefulset', 'deployment'] as const
export type Overlay = typeof OVERLAYS[number]
/** Opt-in components that expose the pods outside the cluster; each is rendered with each overlay. */
export const VARIANTS = ['nodeport', 'loadbalancer'] as const

/** Renders an overlay, with an opt-in variant component when given. */
export function render (overlay: Overlay, variant?: typeof VARIANTS[number]): Manifest[] {
  return renderKustomization(`${ROOT}k8s/overlays/${overlay}`, variant === undefined ? [] : [`${ROOT}k8s/components/${variant}`])
}

export interface EnvVar {
  name: string
  value?: string
  valueFrom?: {
    fieldRef?: { fieldPath: string }
    secretKeyRef?: { name: string, key: string, optional?: boolean }
    configMapKeyRef?: { name: string, key: string, optional?: boolean }
  }
}

export interface Probe { httpGet?: { path: string, port: number | string }, exec?: { command: string[] } }

export interface Container {
  name: string
  image: string
  ports: Array<{ name: string, containerPort: number }>
  env: EnvVar[]
  startupProbe?: Probe
  livenessProbe?: Probe
  readinessProbe?: Probe
  lifecycle?: { preStop?: { exec?: { command: string[] }, sleep?: { seconds: number } } }
  volumeMounts?: Array<{ name: string, mountPath: string }>
}

export interface PodTemplate {
  metadata: { labels: Record<string, string> }
  spec: {
    terminationGracePeriodSeconds?: number
    containers: Container[]
    volumes?: Array<{ name: string, configMap?: { name: string } }>
  }
}

export interface Workload extends Manifest {
  spec: { selector: { matchLabels: Record<string, string> }, serviceName?: string, template: PodTemplate }
}

export function workloadOf (resources: Manifest[]): Workload {
  const found = resources.filter((r) => r.kind === 'StatefulSet' || r.kind === 'Deployment')
  if (found.length !== 1) throw new Error(`expected one workload, found ${found.length}`)
  return found[0] as Workload
}

export function appContainer (resources: Manifest[]): Container {
  const container = workloadOf(resources).spec.template.spec.containers.find((c) => c.name === 'wsc')
  if (container === undefined) throw new Error('no container named wsc')
  return container
}

export function byKind<T extends Manifest = Manifest> (resources: Manifest[], kind: string): T[] {
  return resources.filter((r) => r.kind === kind) as T[]
}

/**
 * The environment the kubelet gives the container: literal values, the downward API for a pod named
 * `podName` at `podIp`, and `secrets` for secretKeyRef (`name/key`); a missing optional secret is unset.
 */
export function podEnv (container: Container, podName: string, podIp: string, secrets: Record<string, string> = {}): NodeJS.ProcessEnv {
  const fields: Record<string, string> = { 'metadata.name': podName, 'metadata.namespace': 'wsc', 'status.podIP': podIp }
  const env: NodeJS.ProcessEnv = {}
  for (const variable of container.env) {
    if (variable.value !== undefined) env[variable.name] = variable.value
    const from = variable.valueFrom
    if (from?.fieldRef !== undefined) {
      const value = fields[from.fieldRef.fieldPath]
      if (value === undefined) throw new Error(`${variable.name}: fieldRef ${from.fieldRef.fieldPath} not simulated`)
      env[variable.name] = value
    }
    if (from?.secretKeyRef !== undefined) {
      const value = secrets[`${from.secretKeyRef.name}/${from.secretKeyRef.key}`]
      if (value !== undefined) env[variable.name] = value
      else if (from.secretKeyRef.optional !== true) throw new Error(`${variable.name}: required secret ${from.secretKeyRef.name}/${from.secretKeyRef.key} missing`)
    }
  }
  return env
}

/** Env var names a source file reads as `env.NAME`, `process.env.NAME` or `env['NAME']`. */
export function envReadBy (file: string): Set<string> {
  const text = readFileSync(`${ROOT}${file}`, 'utf8')
  const names = new Set<string>()
  for (const match of text.matchAll(/\benv(?:\.([A-Z][A-Z0-9_]*)|\[['"]([A-Z][A-Z0-9_]*)['"]\])/g)) names.add((match[1] ?? match[2]) as string)
  return names
}

/**
 * Env vars the code reads: the config loader's table (CONFIG_KEYS, node identity included) and
 * WSC_CONFIG, and the example app that the image runs.
 */
export function envReadByCode (): Map<string, string> {
  const readers = new Map<string, string>()
  for (const spec of CONFIG_KEYS) for (const name of spec.env ?? []) readers.set(name, `config key ${spec.key}`)
  for (const file of ['lib/config.ts', 'example/server.ts', 'example/app.ts', 'example/production.ts']) {
    for (const name of envReadBy(file)) if (!readers.has(name)) readers.set(name, file)
  }
  return readers
}

const DURATION_UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 }

/** Seconds in a duration written as the config loader accepts it (`10s`, `500ms`, `2m`, bare ms). */
export function durationSeconds (text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(text.trim())
  if (m === null) throw new Error(`not a duration: ${text}`)
  return Number(m[1]) * (DURATION_UNITS[m[2] ?? 'ms'] ?? 0)
}

/** Seconds the preStop hook waits: `sleep N` in an exec hook or the sleep action. */
export function preStopSeconds (container: Container): number {
  const preStop = container.lifecycle?.preStop
  if (preStop?.sleep !== undefined) return preStop.sleep.seconds
  const script = preStop?.exec?.command.join(' ') ?? ''
  const m = /\bsleep\s+(\d+)\b/.exec(script)
  if (m === null) throw new Error(`preStop does not sleep: ${script}`)
  return Number(m[1])
}
