import { existsSync, readFileSync, statSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { parseAllDocuments, parse as parseYaml } from 'yaml'

/** A rendered Kubernetes object. */
export interface Manifest {
  apiVersion: string
  kind: string
  metadata: { name: string, namespace?: string, labels?: Record<string, string>, annotations?: Record<string, string> }
  [field: string]: unknown
}

interface ConfigMapGenerator {
  name: string
  files?: string[]
  options?: { disableNameSuffixHash?: boolean, labels?: Record<string, string>, annotations?: Record<string, string> }
}

interface PatchTarget { group?: string, version?: string, kind?: string, name?: string, namespace?: string, labelSelector?: string }
type JsonPatchOp = { op: 'add' | 'replace' | 'remove', path: string, value?: unknown }

interface Kustomization {
  apiVersion: string
  kind: 'Kustomization' | 'Component'
  namespace?: string
  resources?: string[]
  components?: string[]
  configMapGenerator?: ConfigMapGenerator[]
  patches?: Array<{ target: PatchTarget, patch: string }>
  images?: Array<{ name: string, newName?: string, newTag?: string }>
}

// Every field this renderer implements; any other field fails the render instead of being ignored.
const SUPPORTED = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'components', 'configMapGenerator', 'patches', 'images'])
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass', 'PriorityClass'])
const POD_TEMPLATE_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'])

function readKustomization (dir: string): Kustomization {
  const file = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'].map((name) => join(dir, name)).find((path) => existsSync(path))
  if (file === undefined) throw new Error(`${dir}: no kustomization.yaml`)
  const k = parseYaml(readFileSync(file, 'utf8')) as Kustomization
  for (const field of Object.keys(k)) {
    if (!SUPPORTED.has(field)) throw new Error(`${file}: field ${field} is not implemented by the test renderer`)
  }
  return k
}

function readResourceFile (path: string): Manifest[] {
  return parseAllDocuments(readFileSync(path, 'utf8'))
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors[0]?.message ?? 'invalid YAML'}`)
      return doc.toJS() as Manifest | null
    })
    .filter((doc): doc is Manifest => doc !== null)
}

function generateConfigMap (dir: string, gen: ConfigMapGenerator): Manifest {
  if (gen.options?.disableNameSuffixHash !== true) throw new Error(`${dir}: configMapGenerator ${gen.name} needs disableNameSuffixHash (hash suffixes are not implemented)`)
  for (const field of Object.keys(gen)) {
    if (!['name', 'files', 'options'].includes(field)) throw new Error(`${dir}: configMapGenerator.${field} is not implemented`)
  }
  const data: Record<string, string> = {}
  for (const entry of gen.files ?? []) {
    const [key, path] = entry.includes('=') ? entry.split('=', 2) as [string, string] : [basename(entry), entry]
    data[key] = readFileSync(join(dir, path), 'utf8')
  }
  const metadata: Manifest['metadata'] = { name: gen.name }
  if (gen.options.labels !== undefined) metadata.labels = { ...gen.options.labels }
  if (gen.options.annotations !== undefined) metadata.annotations = { ...gen.options.annotations }
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata, data }
}

function setImages (resources: Manifest[], images: NonNullable<Kustomization['images']>): void {
  for (const resource of resources) {
    if (!POD_TEMPLATE_KINDS.has(resource.kind)) continue
    const podSpec = (resource.spec as { template: { spec: { containers?: Array<{ image: string }>, initContainers?: Array<{ image: string }> } } }).template.spec
    for (const container of [...(podSpec.containers ?? []), ...(podSpec.initContainers ?? [])]) {
      const name = container.image.replace(/@.*$/, '').replace(/:[^/:]*$/, '')
      const image = images.find((candidate) => candidate.name === name)
      if (image === undefined) continue
      const tag = image.newTag ?? (container.image.match(/:([^/:]*)$/)?.[1])
      container.image = `${image.newName ?? name}${tag === undefined ? '' : `:${tag}`}`
    }
  }
}

function targets (resource: Manifest, target: PatchTarget): boolean {
  const [group, version] = resource.apiVersion.includes('/') ? resource.apiVersion.split('/') : ['', resource.apiVersion]
  const labels = resource.metadata.labels ?? {}
  return (target.group === undefined || target.group === group) &&
    (target.version === undefined || target.version === version) &&
    (target.kind === undefined || target.kind === resource.kind) &&
    (target.name === undefined || target.name === resource.metadata.name) &&
    (target.namespace === undefined || target.namespace === resource.metadata.namespace) &&
    (target.labelSelector === undefined || target.labelSelector.split(',').every((term) => {
      const [key = '', value] = term.split('=')
      return labels[key.trim()] === value?.trim()
    }))
}

/** Applies JSON 6902 operations (add, replace, remove) to `resource` in place. */
function applyJsonPatch (resource: Manifest, ops: JsonPatchOp[], where: string): void {
  for (const { op, path, value } of ops) {
    const keys = path.split('/').slice(1).map((k) => k.replaceAll('~1', '/').replaceAll('~0', '~'))
    const last = keys.pop()
    if (last === undefined) throw new Error(`${where}: patch path ${path}`)
    let parent: unknown = resource
    for (const k of keys) {
      parent = (parent as Record<string, unknown>)[k]
      if (parent === null || typeof parent !== 'object') throw new Error(`${where}: patch path ${path} does not exist`)
    }
    if (Array.isArray(parent)) {
      const index = last === '-' ? parent.length : Number(last)
      if (op === 'add') parent.splice(index, 0, value)
      else if (op === 'replace') parent[index] = value
      else parent.splice(index, 1)
      continue
    }
    const container = parent as Record<string, unknown>
    if (op === 'remove' || op === 'replace') {
      if (!(last in container)) throw new Error(`${where}: patch ${op} ${path}: no such field`)
      if (op === 'remove') delete container[last]
      else container[last] = value
    } else if (op === 'add') {
      container[last] = value
    } else {
      throw new Error(`${where}: patch op ${String(op)} is not implemented by the test renderer`)
    }
  }
}

function applyPatches (dir: string, resources: Manifest[], patches: NonNullable<Kustomization['patches']>): void {
  for (const { target, patch } of patches) {
    for (const field of Object.keys(target)) {
      if (!['group', 'version', 'kind', 'name', 'namespace', 'labelSelector'].includes(field)) throw new Error(`${dir}: patch target ${field} is not implemented`)
    }
    const ops = parseYaml(patch) as JsonPatchOp[]
    if (!Array.isArray(ops)) throw new Error(`${dir}: only JSON 6902 patches (a list of operations) are implemented`)
    const matched = resources.filter((resource) => targets(resource, target))
    if (matched.length === 0) throw new Error(`${dir}: a patch matches nothing (${JSON.stringify(target)})`)
    for (const resource of matched) applyJsonPatch(resource, ops, dir)
  }
}

/** Adds the resources, generated objects and components of `dir` to `into`, then applies its transformers. */
function accumulate (dir: string, expectKind: Kustomization['kind'], into: Manifest[]): void {
  const k = readKustomization(dir)
  if (k.kind !== expectKind) throw new Error(`${dir}: expected kind ${expectKind}, got ${k.kind}`)
  const own: Manifest[] = expectKind === 'Component' ? into : []
  for (const entry of k.resources ?? []) {
    const path = resolve(dir, entry)
    if (statSync(path).isDirectory()) own.push(...renderKustomization(path))
    else own.push(...readResourceFile(path))
  }
  for (const gen of k.configMapGenerator ?? []) own.push(generateConfigMap(dir, gen))
  for (const component of k.components ?? []) accumulate(resolve(dir, component), 'Component', own)
  if (k.patches !== undefined) applyPatches(dir, own, k.patches)
  if (k.namespace !== undefined) {
    for (const resource of own) {
      if (!CLUSTER_SCOPED.has(resource.kind)) resource.metadata.namespace = k.namespace
    }
  }
  if (k.images !== undefined) setImages(own, k.images)
  if (own !== into) into.push(...own)
}

/**
 * Renders a kustomization directory the way `kustomize build` does for the subset of fields our
 * k8s/ uses (resources, components, namespace, images, configMapGenerator without hash suffixes, and
 * JSON 6902 patches selected by group, version, kind, name, namespace or an equality labelSelector).
 * `components` are extra components applied last, as if the kustomization listed them.
 */
export function renderKustomization (dir: string, components: string[] = []): Manifest[] {
  const out: Manifest[] = []
  accumulate(dir, 'Kustomization', out)
  const k = readKustomization(dir)
  for (const component of components) {
    const added: Manifest[] = []
    accumulate(component, 'Component', added)
    for (const resource of added) {
      if (k.namespace !== undefined && !CLUSTER_SCOPED.has(resource.kind)) resource.metadata.namespace = k.namespace
    }
    if (k.images !== undefined) setImages(added, k.images)
    out.push(...added)
  }
  const seen = new Set<string>()
  for (const resource of out) {
    const id = manifestId(resource)
    if (seen.has(id)) throw new Error(`${dir}: ${id} is defined twice`)
    seen.add(id)
  }
  return out
}

/** `Kind/namespace/name`, the identity kustomize and the API server use. */
export function manifestId (resource: Manifest): string {
  return `${resource.kind}/${resource.metadata.namespace ?? ''}/${resource.metadata.name}`
}
