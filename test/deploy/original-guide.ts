import { readFileSync } from 'node:fs'
import { isDeepStrictEqual } from 'node:util'
import { parseAllDocuments, parse as parseYaml } from 'yaml'
import type { Manifest } from './kustomize.js'
import { render, ROOT, type Overlay, VARIANTS } from './pod.js'

/**
 * The manifests and the nginx site of the deployment guide this project started from (written for
 * go-wsc), copied verbatim into test/deploy/original-guide/ from its YAML and nginx blocks, and what
 * in k8s/ each one became. docs/deploy-kubernetes.md explains every difference this module finds.
 */
export const GUIDE_DIR = `${ROOT}test/deploy/original-guide/`

interface Pair { file: string, kind: string, name: string, overlay: Overlay, variant?: typeof VARIANTS[number], ours: string }

/** Each object of the guide and its counterpart: same kind, and the same name unless `ours` says otherwise. */
export const PAIRS: Pair[] = [
  { file: 'wsc-statefulset.yaml', kind: 'StatefulSet', name: 'wsc', overlay: 'statefulset', ours: 'wsc' },
  { file: 'wsc-statefulset.yaml', kind: 'Service', name: 'wsc', overlay: 'statefulset', ours: 'wsc' },
  { file: 'wsc-deployment.yaml', kind: 'Deployment', name: 'wsc', overlay: 'deployment', ours: 'wsc' },
  { file: 'wsc-deployment.yaml', kind: 'Service', name: 'wsc', overlay: 'deployment', ours: 'wsc' },
  { file: 'wsc-ingress.yaml', kind: 'Ingress', name: 'wsc-ingress', overlay: 'statefulset', ours: 'wsc-ingress' },
  { file: 'wsc-service-nodeport.yaml', kind: 'Service', name: 'wsc-nodeport', overlay: 'statefulset', variant: 'nodeport', ours: 'wsc-nodeport' },
  // The guide's complete external-nginx example replaces Service wsc with a NodePort of the same name.
  { file: 'wsc-service-nodeport-complete.yaml', kind: 'Service', name: 'wsc', overlay: 'statefulset', variant: 'nodeport', ours: 'wsc-nodeport' },
  { file: 'wsc-service-lb.yaml', kind: 'Service', name: 'wsc-lb', overlay: 'statefulset', variant: 'loadbalancer', ours: 'wsc-lb' },
  { file: 'wsc-configmap.yaml', kind: 'ConfigMap', name: 'wsc-config', overlay: 'statefulset', ours: 'wsc-config' },
  { file: 'wsc-hpa-statefulset.yaml', kind: 'HorizontalPodAutoscaler', name: 'wsc-hpa', overlay: 'statefulset', ours: 'wsc-hpa' },
  { file: 'wsc-hpa-deployment.yaml', kind: 'HorizontalPodAutoscaler', name: 'wsc-hpa', overlay: 'deployment', ours: 'wsc-hpa' }
]

export function guideManifests (file: string): Manifest[] {
  return parseAllDocuments(readFileSync(`${GUIDE_DIR}${file}`, 'utf8')).map((doc) => doc.toJS() as Manifest).filter((m) => m !== null)
}

/** A field that differs: `path` from the object's root, list items named by their name or port. */
export interface Difference { object: string, path: string[], guide: unknown, ours: unknown }

const CPU = /^(\d+(?:\.\d+)?)(m?)$/

/** Leaf values by path; list items keyed by their port, name, host or path; other lists are leaves. */
function flatten (value: unknown, path: string[], out: Map<string, { path: string[], value: unknown }>): void {
  if (Array.isArray(value) && value.length > 0 && value.every((item) => item !== null && typeof item === 'object')) {
    const keyOf = (item: Record<string, unknown>): unknown => item.port ?? item.containerPort ?? item.name ?? item.host ?? item.path
    if (value.every((item) => keyOf(item as Record<string, unknown>) !== undefined)) {
      for (const item of value as Array<Record<string, unknown>>) flatten(item, [...path, String(keyOf(item))], out)
      return
    }
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) flatten(v, [...path, k], out)
    return
  }
  // Equal quantities written differently ("1000m" and "1" CPU) are the same value.
  const cpu = path.at(-1) === 'cpu' && typeof value === 'string' ? CPU.exec(value) : null
  out.set(JSON.stringify(path), { path, value: cpu === null ? value : Number(cpu[1]) / (cpu[2] === 'm' ? 1000 : 1) })
}

function leaves (manifest: Manifest): Map<string, { path: string[], value: unknown }> {
  const copy = structuredClone(manifest) as Manifest & { data?: Record<string, string> }
  // A ConfigMap's config.yaml is compared key by key, not as one string.
  if (copy.kind === 'ConfigMap' && copy.data?.['config.yaml'] !== undefined) (copy.data as Record<string, unknown>)['config.yaml'] = parseYaml(copy.data['config.yaml'])
  const out = new Map<string, { path: string[], value: unknown }>()
  flatten(copy, [], out)
  return out
}

/** Every field of every guide object that k8s/ leaves out, sets differently, or adds. */
export function manifestDifferences (): Difference[] {
  const differences: Difference[] = []
  for (const pair of PAIRS) {
    const theirs = guideManifests(pair.file).find((m) => m.kind === pair.kind && m.metadata.name === pair.name)
    const ours = render(pair.overlay, pair.variant).find((m) => m.kind === pair.kind && m.metadata.name === pair.ours)
    if (theirs === undefined || ours === undefined) throw new Error(`${pair.file}: ${pair.kind} ${pair.name} → ${pair.ours}: not found`)
    const object = `${pair.kind} ${pair.name}${pair.ours === pair.name ? '' : ` → ${pair.ours}`} (${pair.file})`
    const a = leaves(theirs)
    const b = leaves(ours)
    for (const [id, { path, value }] of a) {
      if (!isDeepStrictEqual(value, b.get(id)?.value)) differences.push({ object, path, guide: value, ours: b.get(id)?.value })
    }
    for (const [id, { path, value }] of b) if (!a.has(id)) differences.push({ object, path, guide: undefined, ours: value })
  }
  // The guide's config.yaml example against the file the ConfigMap is made of.
  const a = new Map<string, { path: string[], value: unknown }>()
  const b = new Map<string, { path: string[], value: unknown }>()
  flatten(parseYaml(readFileSync(`${GUIDE_DIR}config.yaml`, 'utf8')), [], a)
  flatten(parseYaml(readFileSync(`${ROOT}k8s/base/config.yaml`, 'utf8')), [], b)
  for (const [id, { path, value }] of a) {
    if (!isDeepStrictEqual(value, b.get(id)?.value)) differences.push({ object: 'config.yaml', path, guide: value, ours: b.get(id)?.value })
  }
  for (const [id, { path, value }] of b) if (!a.has(id)) differences.push({ object: 'config.yaml', path, guide: undefined, ours: value })
  return differences
}

// ---- nginx ----

export interface Directive { block: string[], name: string, args: string }

/** Directives of an nginx configuration with the blocks they are in (`server 443`, `location /ws`…); includes inlined from `includes`. */
export function nginxDirectives (text: string, includes: Record<string, string> = {}): Directive[] {
  const out: Directive[] = []
  const stack: string[] = []
  let servers = 0
  const walk = (source: string): void => {
    let pending = ''
    for (const token of source.replace(/#[^\n]*/g, '').split(/([{};])/)) {
      if (token === '{') {
        const head = pending.trim().replace(/\s+/g, ' ')
        stack.push(head === 'server' ? `server#${servers++}` : head)
        pending = ''
      } else if (token === '}') {
        stack.pop()
        pending = ''
      } else if (token === ';') {
        const [name = '', ...args] = pending.trim().split(/\s+/)
        pending = ''
        if (name === 'include' && includes[args.join(' ')] !== undefined) walk(includes[args.join(' ')] as string)
        else if (name !== '') out.push({ block: [...stack], name, args: args.join(' ') })
      } else {
        pending += token
      }
    }
  }
  walk(text)
  // A server block is named by its first listen port, so the servers of two files pair up.
  const port = new Map(out.filter((d) => d.name === 'listen' && d.block.length === 1).reverse().map((d) => [d.block[0], /(\d+)/.exec(d.args)?.[1] ?? '']))
  return out.map((d) => ({ ...d, block: d.block.map((head) => head.startsWith('server#') ? `server ${port.get(head) ?? ''}` : head) }))
}

/** Directives of the guide's nginx site that ours leaves out or sets differently, and those ours adds. */
export function nginxDifferences (): Difference[] {
  const theirs = nginxDirectives(readFileSync(`${GUIDE_DIR}wsc.conf`, 'utf8'))
  const ours = nginxDirectives(readFileSync(`${ROOT}k8s/nginx/conf.d/wsc.conf`, 'utf8'), {
    'snippets/wsc-locations.conf': readFileSync(`${ROOT}k8s/nginx/snippets/wsc-locations.conf`, 'utf8')
  })
  const id = (d: Directive): string => JSON.stringify([...d.block, d.name])
  const group = (list: Directive[]): Map<string, Directive[]> => {
    const map = new Map<string, Directive[]>()
    for (const d of list) map.set(id(d), [...map.get(id(d)) ?? [], d])
    return map
  }
  const a = group(theirs)
  const b = group(ours)
  const differences: Difference[] = []
  const args = (list: Directive[] | undefined): string[] | undefined => list?.map((d) => d.args).sort()
  for (const [key, list] of a) {
    const path = [...(list[0] as Directive).block, (list[0] as Directive).name]
    if (!isDeepStrictEqual(args(list), args(b.get(key)))) differences.push({ object: 'nginx conf.d/wsc.conf', path, guide: args(list), ours: args(b.get(key)) })
  }
  for (const [key, list] of b) {
    if (!a.has(key)) differences.push({ object: 'nginx conf.d/wsc.conf', path: [...(list[0] as Directive).block, (list[0] as Directive).name], guide: undefined, ours: args(list) })
  }
  return differences
}
