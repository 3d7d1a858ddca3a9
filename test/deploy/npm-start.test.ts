import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { appendFileSync, cpSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { within } from '../helper.js'
import { ROOT } from './pod.js'

// The README runs `npm start` twice side by side: the second must not delete the files the first is
// running, and a restart compiles only the sources that changed. This runs in a copy of the project,
// so the tree the other tests use is not rebuilt under them.

interface Started { baseUrl: string, compileMs: number }

/** `npm start` in `dir` until its start-up line; killed (with its process group) after the test. */
async function npmStart (t: TestContext, dir: string): Promise<Started> {
  const began = performance.now()
  let compiled = 0
  // The copy's code is not what coverage measures, and tsc's own coverage would only cost time.
  const { NODE_V8_COVERAGE: _coverage, ...env } = process.env
  const child = spawn('npm', ['start'], {
    cwd: dir,
    env: { ...env, HOST: '127.0.0.1', PORT: '0', METRICS_HOST: '127.0.0.1', METRICS_PORT: '0', REDIS_ADDR: '', MYSQL_URL: '', WSC_CONFIG: '', NODE_ENV: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true
  })
  t.after(() => { if (child.exitCode === null && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL') })
  let output = ''
  const started = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      // npm prints the start script's command line once the build is done.
      if (compiled === 0 && output.includes('> node dist/example/server.js')) compiled = performance.now()
      const page = /"page":"(http:\/\/127\.0\.0\.1:\d+)\/"/.exec(output)?.[1]
      if (page !== undefined) resolve(page)
    })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.once('exit', (code) => reject(new Error(`npm start exited (${code}):\n${output}`)))
  })
  const baseUrl = await within(started, 180_000, `npm start to serve (so far:\n${output})`)
  return { baseUrl, compileMs: Math.round(compiled - began) }
}

/** Every file under `dir` with its modification time and inode. */
function snapshot (dir: string): Map<string, { mtimeMs: number, ino: number }> {
  const files = new Map<string, { mtimeMs: number, ino: number }>()
  const walk = (at: string): void => {
    for (const name of readdirSync(at)) {
      const path = join(at, name)
      const stat = statSync(path)
      if (stat.isDirectory()) walk(path)
      else files.set(relative(dir, path), { mtimeMs: stat.mtimeMs, ino: stat.ino })
    }
  }
  walk(dir)
  return files
}

test('npm start compiles only what changed and never deletes a running node\'s files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsc-npm-start-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  for (const entry of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'lib', 'plugins', 'client', 'example']) {
    cpSync(join(ROOT, entry), join(dir, entry), { recursive: true })
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'))

  const first = await npmStart(t, dir)
  const before = snapshot(join(dir, 'dist'))
  const clientBefore = await (await fetch(`${first.baseUrl}/client.js`)).text()

  // One source changes; a second node starts beside the first, as the README's two-pod example does.
  appendFileSync(join(dir, 'example/page.ts'), '\n// changed\n')
  const second = await npmStart(t, dir)
  const after = snapshot(join(dir, 'dist'))
  t.diagnostic(`npm start compiled in ${first.compileMs} ms from nothing, ${second.compileMs} ms after one source changed`)

  assert.deepEqual([...before.keys()].filter((path) => !after.has(path)), [], 'no file was deleted')
  assert.deepEqual([...after.keys()].filter((path) => !before.has(path)), [], 'no file was added')
  const rewritten = [...after].filter(([path, stat]) => before.get(path)?.mtimeMs !== stat.mtimeMs || before.get(path)?.ino !== stat.ino).map(([path]) => path).sort()
  assert.ok(rewritten.includes('example/page.js'), 'the changed source was compiled')
  // Besides the changed file: the compiler's record of what it built and the client bundle (esbuild runs each time).
  assert.deepEqual(rewritten.filter((path) => !path.startsWith('example/page.')), ['client/wsc-client.js', 'tsconfig.build.tsbuildinfo'].filter((path) => rewritten.includes(path)))

  // The first node goes on serving, from files that are still there.
  const page = await fetch(`${first.baseUrl}/`)
  assert.equal(page.status, 200)
  assert.equal(await (await fetch(`${first.baseUrl}/client.js`)).text(), clientBefore, 'the same client bundle')
  assert.equal((await fetch(`${second.baseUrl}/`)).status, 200)
})
