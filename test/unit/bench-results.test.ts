import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LATEST_RESULTS, RECORDED_RESULTS, resultsTable, type Results } from '../../bench/results.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const git = (...args: string[]): number | null => spawnSync('git', args, { cwd: ROOT, stdio: 'ignore' }).status

test('npm run bench writes its figures to a file git ignores, so a run never changes a tracked file', () => {
  const latest = relative(ROOT, LATEST_RESULTS)
  assert.equal(git('check-ignore', '-q', latest), 0, `${latest} is ignored`)
  assert.notEqual(git('ls-files', '--error-unmatch', latest), 0, `${latest} is not tracked`)
  // The runner writes through writeLatestResults only.
  const runner = readFileSync(`${ROOT}bench/run.ts`, 'utf8')
  assert.match(runner, /writeLatestResults\(/)
  assert.doesNotMatch(runner, /writeFileSync|appendFileSync|createWriteStream/)
})

test('docs/performance.md shows the recorded full run, which is tracked', () => {
  const recorded = JSON.parse(readFileSync(RECORDED_RESULTS, 'utf8')) as Results
  assert.equal(git('ls-files', '--error-unmatch', relative(ROOT, RECORDED_RESULTS)), 0, 'the recorded run is tracked')
  assert.equal(recorded.profile, 'full')
  const doc = readFileSync(`${ROOT}docs/performance.md`, 'utf8')
  assert.ok(doc.includes(`## Results (full run, Node ${recorded.node}, ${recorded.cores} cores, commit ${recorded.commit})`), 'the heading names the recorded run')
  assert.ok(doc.includes(resultsTable(recorded.rows)), 'the table is the recorded run\'s, as the runner prints it')
})
