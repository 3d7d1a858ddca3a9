// Loaded with --import into every bench process when BENCH_ALLOC_PROF=dir: V8's sampling heap profiler
// samples the allocations (about one per 4 KiB allocated, those collected since included) from start to exit, and the process
// writes it to dir as a .heapprofile (Chrome DevTools, Memory tab, loads it): where a process
// allocates per message, which is what drives its garbage collection pauses. With BENCH_ALLOC_SURVIVORS=1
// it keeps only the objects no young collection freed: what reaches the old generation (a message's
// objects should not), which is what makes scavenges slow and mark-compacts frequent.
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { basename, join } from 'node:path'

const dir = process.env.BENCH_ALLOC_PROF
if (dir !== undefined && dir !== '') {
  const session = new Session()
  session.connect()
  session.post('HeapProfiler.enable')
  session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: process.env.BENCH_ALLOC_SURVIVORS !== '1' })
  process.on('exit', () => {
    // The inspector answers on this thread, so the callback runs before the process is gone.
    session.post('HeapProfiler.stopSampling', (err, result) => {
      if (err === null) writeFileSync(join(dir, `Alloc.${basename(process.argv[1] ?? 'process', '.ts')}.${process.pid}.heapprofile`), JSON.stringify(result.profile))
    })
  })
}
