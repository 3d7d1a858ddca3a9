// `npx tsx bench/profile-summary.ts DIR [--top=N] [--run=TEXT]`: reads the V8 CPU profiles
// BENCH_CPU_PROF=DIR wrote and prints, for each bench process, what it ran, how busy it was, and where its
// own time went (self time by source file and by function, native calls by caller), so profiles before
// and after a change can be read side by side. --run=TEXT looks only at the measured runs whose name
// contains TEXT (e.g. "fastify-wsc, 3 nodes, publish at saturation"), from DIR/windows.jsonl.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { where } from './source-names.js'

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
if (dir === undefined) throw new Error('usage: npx tsx bench/profile-summary.ts DIR [--top=N] [--run=TEXT]')
const option = (name: string): string | undefined => process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3)
const top = Number(option('top') ?? 12)
const run = option('run')
/** The measured runs to look at (monotonic µs, as the profiles' sample times); none: whole processes. */
const windows = run === undefined
  ? undefined
  : readFileSync(join(dir, 'windows.jsonl'), 'utf8').split('\n').filter((line) => line !== '')
    .map((line) => JSON.parse(line) as { name: string, startUs: number, endUs: number }).filter((w) => w.name.includes(run))
if (windows?.length === 0) throw new Error(`no measured run in ${dir}/windows.jsonl is named like ${run}`)
if (windows !== undefined) console.log(`runs: ${windows.map((w) => `${w.name} (${((w.endUs - w.startUs) / 1e6).toFixed(1)} s)`).join('; ')}`)
const inWindow = (us: number): boolean => windows === undefined || windows.some((w) => us >= w.startUs && us <= w.endUs)
const NOT_RUNNING = new Set(['(idle)'])

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
  let at = profile.startTime
  let span = 0
  for (const [i, id] of profile.samples.entries()) {
    const frame = byId.get(id)?.callFrame
    const us = profile.timeDeltas[i] ?? 0
    at += us
    if (!inWindow(at)) continue
    span += us
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
  if (span === 0) continue
  const wall = windows === undefined ? profile.endTime - profile.startTime : span
  console.log(`${file}: ${script}, ${(wall / 1e6).toFixed(1)} s, busy (not idle) ${(busy / 1e6).toFixed(2)} s of it (${((busy / wall) * 100).toFixed(0)} %)`)
  console.log('  self time by source:', ...ranked(byFile, busy).map((line) => `\n${line}`))
  console.log('  self time by function:', ...ranked(byFunction, busy).map((line) => `\n${line}`))
  console.log('  native calls by caller:', ...ranked(nativeByCaller, busy).map((line) => `\n${line}`))
}
