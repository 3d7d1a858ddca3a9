// With BENCH_STALLS=1 the cross-node scenario runs this process beside each topology: it does nothing but
// wake every millisecond, and notes each wake-up more than 2 ms late. A late wake-up of an idle process
// is the machine's: every core was busy with something else. `stop` answers those of the run, to set
// beside the run's slowest messages (docs/performance.md, "Why the p99 goal at 2,000/s is not met either").
import { now, serveCommands } from './harness.js'

/** A wake-up this much later than its timer asked for is a stall (ms). */
const LATE_MS = 2

/** Late wake-ups of the run in progress: [when the timer was due (epoch ms, as `now()`), how late (ms)]. */
let stalls: Array<[number, number]> = []
let timer: NodeJS.Timeout | undefined

function tick (due: number): void {
  const at = now()
  if (at - due > LATE_MS) stalls.push([due, at - due])
  const next = at + 1
  timer = setTimeout(() => tick(next), 1)
}

serveCommands({
  start: () => {
    stalls = []
    if (timer === undefined) tick(now())
    return true
  },
  stop: () => {
    clearTimeout(timer)
    timer = undefined
    return stalls
  }
})
