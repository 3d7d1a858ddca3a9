// `npx tsx bench/alloc-summary.ts <dir> [--top=N]`: the .heapprofile files BENCH_ALLOC_PROF wrote (see
// docs/performance.md), each as the bytes sampled in all and its N largest allocation sites (default 12),
// a site being the allocating function and the four calls above it. With BENCH_ALLOC_SURVIVORS=1 the
// bytes are those of objects that survived a young collection: what reached the old generation.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { where } from './source-names.js'

interface ProfileNode {
  callFrame: { functionName: string, url: string, lineNumber: number }
  selfSize: number
  children: ProfileNode[]
}

const [dir] = process.argv.slice(2).filter((arg) => !arg.startsWith('--'))
if (dir === undefined) throw new Error('usage: npx tsx bench/alloc-summary.ts <dir> [--top=N]')
const top = Number(process.argv.find((arg) => arg.startsWith('--top='))?.slice(6) ?? 12)

/** `name file:line`, the file named as profile-summary.ts names it. */
function frame ({ functionName, url, lineNumber }: ProfileNode['callFrame']): string {
  return `${functionName === '' ? '(anonymous)' : functionName} ${where(url)}:${lineNumber + 1}`
}

for (const file of readdirSync(dir).filter((name) => name.endsWith('.heapprofile')).sort()) {
  const head = (JSON.parse(readFileSync(join(dir, file), 'utf8')) as { head: ProfileNode }).head
  const bySite = new Map<string, number>()
  let total = 0
  const walk = (node: ProfileNode, stack: string[]): void => {
    const path = [...stack, frame(node.callFrame)]
    if (node.selfSize > 0) {
      total += node.selfSize
      const site = path.slice(-5).reverse().join(' < ')
      bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize)
    }
    for (const child of node.children) walk(child, path)
  }
  walk(head, [])
  console.log(`${file}: ${(total / 1e6).toFixed(2)} MB sampled`)
  for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${(bytes / 1e3).toFixed(0).padStart(7)} KB  ${site}`)
  }
}
