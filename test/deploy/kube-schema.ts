import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import type { Manifest } from './kustomize.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** The kubernetes-models module and interface that describe an `apiVersion`/`kind`. */
function modelOf (resource: Manifest): { module: string, type: string } {
  const module = resource.apiVersion.startsWith('monitoring.coreos.com/')
    ? `@kubernetes-models/prometheus-operator/${resource.apiVersion}`
    : `kubernetes-models/${resource.apiVersion}`
  return { module, type: `I${resource.kind}` }
}

/**
 * Validates against the Kubernetes OpenAPI schemas (types, required fields, formats) through the
 * kubernetes-models classes. Throws naming the object and the first violation.
 */
export async function validateSchema (resource: Manifest): Promise<void> {
  const { module } = modelOf(resource)
  const models = await import(module) as Record<string, new (data: unknown) => { validate: () => void }>
  const Model = models[resource.kind]
  if (Model === undefined) throw new Error(`${resource.apiVersion} ${resource.kind}: no such kind in ${module}`)
  try {
    new Model(resource).validate()
  } catch (err) {
    throw new Error(`${resource.kind}/${resource.metadata.name}: ${(err as Error).message}`)
  }
}

/**
 * Finds fields the API does not know (what `kubectl apply --validate=strict` refuses): the OpenAPI
 * schemas allow extra properties, so the manifests are type-checked as object literals against the
 * kubernetes-models interfaces, whose excess property checks reach every nesting level.
 * Returns one message per problem; empty when every field is known.
 */
export function unknownFields (resources: Manifest[], context: string[] = []): string[] {
  const imports: string[] = []
  const decls: string[] = []
  resources.forEach((resource, i) => {
    const { module, type } = modelOf(resource)
    imports.push(`import type { ${type} as T${i} } from '${module}'`)
    decls.push(`// ${context[i] === undefined ? '' : `${context[i]}: `}${resource.kind}/${resource.metadata.name}\nexport const r${i}: T${i} = ${JSON.stringify(resource, null, 2)}`)
  })
  const fileName = `${ROOT}test/deploy/__manifests__.ts`
  const text = `${imports.join('\n')}\n${decls.join('\n')}\n`
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: []
  }
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile.bind(host)
  host.getSourceFile = (name, language, ...rest) =>
    name === fileName ? ts.createSourceFile(name, text, language) : getSourceFile(name, language, ...rest)
  const fileExists = host.fileExists.bind(host)
  host.fileExists = (name) => name === fileName || fileExists(name)
  const program = ts.createProgram([fileName], options, host)
  const lines = text.split('\n')
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ')
    if (d.file?.fileName !== fileName || d.start === undefined) return message
    const { line } = d.file.getLineAndCharacterOfPosition(d.start)
    let owner = line
    while (owner > 0 && !lines[owner]?.startsWith('// ')) owner--
    return `${lines[owner]?.slice(3) ?? '?'}: ${lines[line]?.trim() ?? ''}: ${message}`
  })
}
