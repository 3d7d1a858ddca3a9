/**
 * The package as a user gets it: `npm pack`, installed into a fresh consumer project, type-checked with
 * strict settings and `skipLibCheck: false` (a file importing the package, each subpath and the
 * client, and every TypeScript block of README.md verbatim), and `require`d from CommonJS.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = new URL('../../', import.meta.url).pathname
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string, dependencies: Record<string, string>, devDependencies: Record<string, string>, exports: Record<string, unknown> }

/** The ```ts blocks of README.md, verbatim. */
function readmeTypeScriptBlocks (): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  return [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1] as string)
}

const IMPORTS = `
import Fastify from 'fastify'
import wsc, { bearer, errors, loadConfig, type WscOptions, type Wsc } from 'fastify-wsc'
import health from 'fastify-wsc/health'
import metrics, { type WscMetrics } from 'fastify-wsc/metrics'
import mysqlStore from 'fastify-wsc/mysql-store'
import nodeIdentity from 'fastify-wsc/node-identity'
import redisRouter, { type WscRedis } from 'fastify-wsc/redis-router'
import websocket from 'fastify-wsc/websocket'
import { WscClient } from 'fastify-wsc/client'

const options: WscOptions = { ...loadConfig({ env: process.env }), authenticate: bearer((token) => token) }
const app = Fastify()
await app.register(wsc, options)
const api: Wsc = app.wsc
const registry: WscMetrics['registry'] = app.wscMetrics.registry
const redis: WscRedis = app.wscRedis
export const used = [api, registry, redis, health, metrics, mysqlStore, nodeIdentity, redisRouter, websocket, new errors.ForbiddenError('no'), WscClient]
`

const CJS = `
const assert = require('node:assert/strict')
const Fastify = require('fastify')
const { wsc, bearer, CloseCode } = require('fastify-wsc')
for (const sub of ['node-identity', 'redis-router', 'mysql-store', 'websocket', 'health', 'metrics']) {
  assert.equal(typeof require('fastify-wsc/' + sub).default, 'function', sub)
}
assert.equal(CloseCode.RESTART, 1012)
const app = Fastify()
app.register(wsc, { server: { nodeId: 'cjs' }, authenticate: bearer((token) => token) })
app.ready().then(async () => {
  const sent = await app.wsc.sendToUser('alice', { hello: 'from CommonJS' })
  await app.close()
  console.log(JSON.stringify(sent))
})
`

test('the packed tarball installs into a fresh project, type-checks strictly with its README, and loads from CommonJS', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsc-consumer-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: ROOT })
  const tarball = join(dir, stdout.trim().split('\n').pop() as string)

  const consumer = join(dir, 'consumer')
  mkdirSync(join(consumer, 'src'), { recursive: true })
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({
    name: 'consumer',
    private: true,
    type: 'module',
    dependencies: {
      'fastify-wsc': `file:${tarball}`,
      fastify: pkg.dependencies.fastify,
      '@fastify/redis': pkg.devDependencies['@fastify/redis'],
      '@types/node': pkg.devDependencies['@types/node']
    }
  }, null, 2))
  writeFileSync(join(consumer, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      exactOptionalPropertyTypes: true,
      noUncheckedIndexedAccess: true,
      skipLibCheck: false,
      noEmit: true,
      types: ['node']
    },
    include: ['src']
  }, null, 2))
  writeFileSync(join(consumer, 'src', 'imports.ts'), IMPORTS)
  const blocks = readmeTypeScriptBlocks()
  assert.ok(blocks.length >= 3, 'README.md has its TypeScript examples')
  blocks.forEach((block, i) => writeFileSync(join(consumer, 'src', `readme-${i + 1}.ts`), block))
  writeFileSync(join(consumer, 'require.cjs'), CJS)

  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], { cwd: consumer, timeout: 240_000 })

  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  await run(process.execPath, [tsc, '-p', consumer], { cwd: consumer }).catch((err: { stdout?: string }) => {
    assert.fail(`the consumer project does not type-check:\n${err.stdout ?? String(err)}`)
  })

  const required = await run(process.execPath, ['require.cjs'], { cwd: consumer })
  assert.equal((JSON.parse(required.stdout) as { seq: number }).seq, 1)
})
