// Where `npm run bench` writes its figures, and the table it prints. docs/performance.md quotes the table
// of bench/results/recorded.json (a full run, tracked); every run writes bench/results/latest.json,
// which git ignores, so running the benchmarks never changes a tracked file.
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The file every run writes (ignored by git). */
export const LATEST_RESULTS = fileURLToPath(new URL('./results/latest.json', import.meta.url))
/** The run docs/performance.md quotes (tracked; copy a full run's latest.json here to record it). */
export const RECORDED_RESULTS = fileURLToPath(new URL('./results/recorded.json', import.meta.url))

export interface Row {
  scenario: string
  metric: string
  ours: number
  baseline: number
  baselineName: string
  /** Higher is better for throughput; lower for latency and memory. */
  better: 'higher' | 'lower'
  unit: string
}

export interface Results {
  profile: 'quick' | 'full'
  node: string
  cores: number
  cpu: string | undefined
  commit: string
  seconds: number
  /** The machine's 1, 5 and 15 minute load averages as the run started and as it ended (shared machines). */
  loadAverage: { start: number[], end: number[] }
  rows: Array<Row & { ratio: number }>
}

function format (value: number): string {
  if (!Number.isFinite(value)) return String(value)
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(2)
}

/** The markdown table of a run, as printed and as docs/performance.md shows it. */
export function resultsTable (rows: Row[]): string {
  const table = ['| scenario | metric | fastify-wsc | baseline | ratio (ours/baseline) |', '|---|---|---|---|---|']
  for (const row of rows) {
    table.push(`| ${row.scenario} | ${row.metric} (${row.better} is better) | ${format(row.ours)} ${row.unit} | ${format(row.baseline)} ${row.unit} (${row.baselineName}) | ${(row.ours / row.baseline).toFixed(2)}× |`)
  }
  return table.join('\n')
}

export function writeLatestResults (results: Results): void {
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  writeFileSync(LATEST_RESULTS, JSON.stringify(results, null, 2) + '\n')
}
