// `npx tsx bench/profile-summary.ts DIR [--top=N]`: reads the V8 CPU profiles BENCH_CPU_PROF=DIR wrote
// and prints, for each bench process, what it ran, how busy it was, and where its own time went (self
// time by source file and by function), so profiles before and after a change can be read side by side.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

const dir = process.argv[2]
if (dir === undefined) throw new Error('usage: npx tsx bench/profile-summary.ts DIR [--top=N]')
const top = Number(process.argv.find((arg) => arg.startsWith('--top='))?.slice('--top='.length) ?? 12)
const NOT_RUNNING = new Set(['(idle)'])

/** A source file shortened to what names it: the package under node_modules, or the path in the repo. */
function where (url: string): string {
  if (url === '') return '(native)'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg !== null) return pkg[1] as string
  const own = /\/((?:bench|lib|plugins|dist)\/.*)$/.exec(url)
  return own?.[1] ?? url.replace(/^file:\/\//, '')
}

function ranked (times: Map<string, number>, total: number): string[] {
  return [...times].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => `    ${(us / 1000).toFixed(0).padStart(7)} ms ${((us / total) * 100).toFixed(1).padStart(5)} %  ${name}`)
}

for (const file of readdirSync(dir).filter((name) => name.endsWith('.cpuprofile')).sort()) {
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parentOf = new Map<number, ProfileNode>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node)
  /** The JavaScript callers of a native frame: the nearest three sources (a package, a file of ours). */
  const callerOf = (id: number): string => {
    const chain: string[] = []
    for (let node = parentOf.get(id); node !== undefined && chain.length < 3; node = parentOf.get(node.id)) {
      if (node.callFrame.url === '' || node.callFrame.url.startsWith('node:')) continue
      const source = where(node.callFrame.url)
      if (chain.at(-1) !== source) chain.push(source)
    }
    return chain.join(' ← ')
  }
  const script = profile.nodes.map((node) => /\/bench\/(servers\/[^/]+|clients\/[^/]+-clients\.ts)$/.exec(node.callFrame.url)?.[1]).find((name) => name !== undefined)
  // A process's other threads (tsx's loader) write profiles of their own.
  if (script === undefined) continue
  const byFile = new Map<string, number>()
  const byFunction = new Map<string, number>()
  const nativeByCaller = new Map<string, number>()
  let busy = 0
  for (const [i, id] of profile.samples.entries()) {
    const frame = byId.get(id)?.callFrame
    const us = profile.timeDeltas[i] ?? 0
    if (frame === undefined || NOT_RUNNING.has(frame.functionName)) continue
    busy += us
    const source = where(frame.url)
    byFile.set(source, (byFile.get(source) ?? 0) + us)
    const name = `${frame.functionName === '' ? '(anonymous)' : frame.functionName} ${source}:${frame.lineNumber + 1}`
    byFunction.set(name, (byFunction.get(name) ?? 0) + us)
    if (frame.url === '' && !frame.functionName.startsWith('(')) {
      const call = `${frame.functionName} ← ${callerOf(id)}`
      nativeByCaller.set(call, (nativeByCaller.get(call) ?? 0) + us)
    }
  }
  const wall = profile.endTime - profile.startTime
  console.log(`${file}: ${script}, ${(wall / 1e6).toFixed(1)} s, busy (not idle) ${((busy / wall) * 100).toFixed(0)} % of it`)
  console.log('  self time by source:', ...ranked(byFile, busy).map((line) => `\n${line}`))
  console.log('  self time by function:', ...ranked(byFunction, busy).map((line) => `\n${line}`))
  console.log('  native calls by caller:', ...ranked(nativeByCaller, busy).map((line) => `\n${line}`))
}
