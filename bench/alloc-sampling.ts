// Loaded with --import into every bench process when BENCH_ALLOC_PROF=dir: V8's sampling heap profiler
// samples the allocations (about one per 4 KiB allocated, those collected since included) from start to exit, and the process
// writes it to dir as a .heapprofile (Chrome DevTools, Memory tab, loads it): where a process
// allocates per message, which is what drives its garbage collection pauses. With BENCH_ALLOC_SURVIVORS=1
// it keeps only the objects no young collection freed: what reaches the old generation (a message's
// objects should not), which is what makes scavenges slow and mark-compacts frequent.
// With BENCH_ALLOC_RUN=text it samples only while the runner measures a run whose name contains text (the
// runner sends SIGUSR2 at its start and end), one profile per run, so start-up and set-up stay out.
import { mkdirSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { basename, join } from 'node:path'

const dir = process.env.BENCH_ALLOC_PROF
if (dir !== undefined && dir !== '') {
  mkdirSync(dir, { recursive: true })
  const session = new Session()
  session.connect()
  session.post('HeapProfiler.enable')
  const survivorsOnly = process.env.BENCH_ALLOC_SURVIVORS === '1'
  const name = basename(process.argv[1] ?? 'process', '.ts')
  const start = (): void => {
    session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !survivorsOnly })
  }
  const stop = (file: string): void => {
    // Objects still in the young generation have not been through a young collection yet: one sorts them out.
    if (survivorsOnly) (globalThis as { gc?: (options: { type: 'minor' }) => void }).gc?.({ type: 'minor' })
    // The inspector answers on this thread, so the callback runs before the process is gone.
    session.post('HeapProfiler.stopSampling', (err, result) => {
      if (err === null) writeFileSync(join(dir, file), JSON.stringify(result.profile))
    })
  }
  if (process.env.BENCH_ALLOC_RUN === undefined) {
    start()
    process.on('exit', () => stop(`Alloc.${name}.${process.pid}.heapprofile`))
  } else {
    let runs = 0
    let sampling = false
    process.on('SIGUSR2', () => {
      sampling = !sampling
      if (sampling) start()
      else stop(`Alloc.${name}.${process.pid}.run${++runs}.heapprofile`)
    })
  }
}
