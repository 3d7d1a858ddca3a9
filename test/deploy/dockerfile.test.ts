import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { join, relative } from 'node:path'
import ts from 'typescript'
import { appContainer, OVERLAYS, render, ROOT } from './pod.js'

// No Docker engine here: the Dockerfile is read, and everything it relies on is checked in the tree.

interface Instruction { op: string, args: string }
interface Stage { from: string, name: string | undefined, instructions: Instruction[] }

function parseDockerfile (text: string): { args: Map<string, string>, stages: Stage[] } {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'))
  const args = new Map<string, string>()
  const stages: Stage[] = []
  for (const line of lines) {
    const [, op = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? []
    const instruction = { op: op.toUpperCase(), args: rest }
    if (instruction.op === 'FROM') {
      const [, from = '', name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest) ?? []
      stages.push({ from, name, instructions: [] })
    } else if (stages.length === 0 && instruction.op === 'ARG') {
      const [name = '', value = ''] = rest.split('=', 2)
      args.set(name, value)
    } else {
      stages.at(-1)?.instructions.push(instruction)
    }
  }
  return { args, stages }
}

function runs (stage: Stage): string[] {
  return stage.instructions.filter((i) => i.op === 'RUN').flatMap((i) => i.args.split('&&').map((cmd) => cmd.trim()))
}

/** Whether .dockerignore keeps `path` (relative, `/`-separated) in the build context; last match wins. */
function inContext (path: string, patterns: string[]): boolean {
  let kept = true
  for (const raw of patterns) {
    const negated = raw.startsWith('!')
    const pattern = (negated ? raw.slice(1) : raw).replace(/^\/|\/$/g, '')
    const source = pattern.split('/').map((part) => part === '**' ? '.*' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')).join('/')
    // A pattern naming a directory covers everything under it.
    if (new RegExp(`^${source}(/.*)?$`).test(path)) kept = negated
  }
  return kept
}

function filesUnder (dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : [path]
  })
}

/** Packages a source file loads at run time: value imports, re-exports and dynamic imports. */
function runtimeImports (file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true)
  const out: string[] = []
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && node.importClause?.isTypeOnly !== true && ts.isStringLiteral(node.moduleSpecifier)) out.push(node.moduleSpecifier.text)
    if (ts.isExportDeclaration(node) && !node.isTypeOnly && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) out.push(node.moduleSpecifier.text)
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] !== undefined && ts.isStringLiteral(node.arguments[0])) out.push(node.arguments[0].text)
    ts.forEachChild(node, visit)
  }
  visit(source)
  return out
}

const dockerfile = parseDockerfile(readFileSync(`${ROOT}Dockerfile`, 'utf8'))
const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { name: string, engines: { node: string }, scripts: Record<string, string>, dependencies: Record<string, string> }
const ignore = readFileSync(`${ROOT}.dockerignore`, 'utf8').split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'))
const buildConfig = JSON.parse(readFileSync(`${ROOT}tsconfig.build.json`, 'utf8')) as { extends: string, include: string[] }

test('multi-stage: the build stage installs everything and builds; the runtime stage has production dependencies and dist/ only', () => {
  const [build, runtime] = dockerfile.stages
  assert.equal(dockerfile.stages.length, 2)
  assert.ok(build && runtime)
  assert.ok(runs(build).some((cmd) => /^npm ci\b/.test(cmd) && !cmd.includes('--omit')), 'build: npm ci with dev dependencies')
  assert.ok(runs(build).includes('npm run build'), 'build: npm run build')
  assert.ok(runs(runtime).some((cmd) => /^npm ci\b.*--omit=dev/.test(cmd)), 'runtime: npm ci --omit=dev')
  assert.ok(!runs(runtime).includes('npm run build'))
  const copies = runtime.instructions.filter((i) => i.op === 'COPY').map((i) => i.args)
  assert.ok(copies.includes(`--from=${build.name ?? ''} /app/dist ./dist`), 'runtime copies dist/ from the build stage')
  assert.ok(copies.some((c) => c.split(/\s+/).includes('package.json')), 'runtime keeps package.json: `fastify-wsc` resolves through its exports')
})

test('the base image is a Node version the package supports', () => {
  const version = dockerfile.args.get('NODE_VERSION') ?? ''
  // Both stages use the same base, whose tag the NODE_VERSION build argument sets.
  for (const stage of dockerfile.stages) assert.equal(stage.from, 'node:$' + '{NODE_VERSION}-bookworm-slim')
  const [major = 0, minor = 0] = version.split('.').map(Number)
  const [, wantMajor = '0', wantMinor = '0'] = /^>=(\d+)\.(\d+)/.exec(pkg.engines.node) ?? []
  assert.equal(major, Number(wantMajor), 'the major the project is tested on')
  assert.ok(minor >= Number(wantMinor), `node ${version} satisfies engines ${pkg.engines.node}`)
})

test('runs as a non-root numeric user matching the pods runAsUser, exposes 8080 and 8081, starts what npm start starts', () => {
  const runtime = dockerfile.stages.at(-1)
  const user = runtime?.instructions.filter((i) => i.op === 'USER').at(-1)?.args ?? 'root'
  const [uid = ''] = user.split(':')
  assert.match(uid, /^\d+$/, 'numeric, so runAsNonRoot can verify it')
  assert.notEqual(Number(uid), 0)
  for (const overlay of OVERLAYS) {
    const workload = render(overlay).find((r) => r.kind === 'StatefulSet' || r.kind === 'Deployment') as unknown as { spec: { template: { spec: { securityContext: { runAsUser: number } } } } }
    assert.equal(workload.spec.template.spec.securityContext.runAsUser, Number(uid), overlay)
    const exposed = runtime?.instructions.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/).map(Number))
    assert.deepEqual(exposed, appContainer(render(overlay)).ports.map((p) => p.containerPort), overlay)
  }
  const cmd = runtime?.instructions.find((i) => i.op === 'CMD')?.args ?? ''
  const argv = JSON.parse(cmd) as string[]
  assert.equal(argv.join(' '), pkg.scripts.start, 'exec form, the same entry point as npm start')
  // dist/example/server.js is what tsc writes for example/server.ts (outDir dist, rootDir .).
  const entry = argv[1] ?? ''
  assert.ok(buildConfig.include.includes(entry.split('/')[1] ?? ''), `${entry} is built by tsconfig.build.json`)
  assert.ok(existsSync(`${ROOT}${entry.replace(/^dist\//, '').replace(/\.js$/, '.ts')}`), `${entry} has a source`)
})

test('every file the build copies is in the build context, and the build has all it compiles', () => {
  const build = dockerfile.stages[0]
  const sources = (build?.instructions ?? []).filter((i) => i.op === 'COPY' && !i.args.startsWith('--from')).flatMap((i) => i.args.split(/\s+/).slice(0, -1))
  for (const source of sources) {
    assert.ok(existsSync(`${ROOT}${source}`), `${source} exists`)
    const files = statSync(`${ROOT}${source}`).isDirectory() ? filesUnder(`${ROOT}${source}`) : [`${ROOT}${source}`]
    for (const file of files) assert.ok(inContext(relative(ROOT, file), ignore), `${relative(ROOT, file)} is not excluded by .dockerignore`)
  }
  for (const needed of [buildConfig.extends.replace(/^\.\//, ''), 'tsconfig.build.json', 'package.json', 'package-lock.json', ...buildConfig.include]) {
    assert.ok(sources.includes(needed), `the build stage copies ${needed}`)
  }
  for (const kept of ['node_modules/x', 'dist/x', '.git/HEAD', 'test/helper.ts', 'k8s/base/kustomization.yaml', '.env']) {
    assert.equal(inContext(kept, ignore), false, `${kept} stays out of the build context`)
  }
})

test('everything lib/, plugins/ and example/ import at run time is a production dependency', () => {
  const production = new Set([...Object.keys(pkg.dependencies), pkg.name])
  for (const dir of ['lib', 'plugins', 'example']) {
    for (const file of filesUnder(`${ROOT}${dir}`).filter((f) => f.endsWith('.ts'))) {
      for (const specifier of runtimeImports(file)) {
        if (specifier.startsWith('.') || specifier.startsWith('node:') || builtinModules.includes(specifier)) continue
        const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0] ?? ''
        assert.ok(production.has(name), `${relative(ROOT, file)} imports ${name}, which npm ci --omit=dev does not install`)
      }
    }
  }
})
