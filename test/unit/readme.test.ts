import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

// What a newcomer meets first: README.md, docs/ and the package metadata npm shows.

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const PAGES = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)]
interface PackageJson {
  repository?: { type?: string, url?: string }
  homepage?: string
  bugs?: { url?: string }
  dependencies: Record<string, string>
  devDependencies: Record<string, string>
}
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson

test('every relative link in README.md and docs/ points to a file of this repository', () => {
  for (const page of PAGES) {
    const text = readFileSync(join(ROOT, page), 'utf8')
    for (const [, target = ''] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target) || target.startsWith('#')) continue
      const file = resolve(dirname(join(ROOT, page)), target.replace(/#.*$/, ''))
      assert.ok(!relative(ROOT, file).startsWith('..'), `${page}: ${target} points outside the repository`)
      assert.ok(existsSync(file), `${page}: ${target} does not exist`)
    }
  }
})

test('every npx command in README.md and docs/ runs without a prompt: a package of ours, or -y', () => {
  const ours = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.devDependencies)])
  let commands = 0
  for (const page of PAGES) {
    for (const [command, flags = '', name = ''] of readFileSync(join(ROOT, page), 'utf8').matchAll(/\bnpx((?:\s+-[-\w]+)*)\s+([@\w][\w./@-]*)/g)) {
      commands++
      // npx asks "Ok to proceed?" before installing a package that is not installed here.
      assert.ok(ours.has(name) || /\s(?:-y|--yes)\b/.test(flags), `${page}: \`${command}\` needs -y (${name} is not a dependency)`)
    }
  }
  assert.ok(commands > 0)
})

test('package.json says where the repository, its docs and its issues are (npm shows them)', () => {
  const url = /^git\+(https:\/\/github\.com\/[\w.-]+\/[\w.-]+)\.git$/.exec(pkg.repository?.url ?? '')?.[1]
  assert.equal(pkg.repository?.type, 'git')
  assert.ok(url, `repository.url is a git+https GitHub URL: ${pkg.repository?.url ?? 'missing'}`)
  assert.equal(pkg.homepage, `${url}#readme`)
  assert.equal(pkg.bugs?.url, `${url}/issues`)
})
