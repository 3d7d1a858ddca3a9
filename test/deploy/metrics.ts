import { readFileSync } from 'node:fs'
import { ROOT } from './pod.js'

/**
 * The wsc_ metrics docs/metrics.md documents, with their type and labels. test/deploy/alerts.test.ts
 * checks this list against what a running node exports; the other deploy tests check the manifests
 * and the guide against it.
 */
export function documentedMetrics (): Map<string, { type: string, labels: string[] }> {
  const doc = readFileSync(`${ROOT}docs/metrics.md`, 'utf8')
  const metrics = new Map<string, { type: string, labels: string[] }>()
  for (const [, name = '', type = '', labels = ''] of doc.matchAll(/^\| `(wsc_[a-z_]+)` \| ([a-z]+) \|([^|]*)\|/gm)) {
    metrics.set(name, { type, labels: [...labels.matchAll(/`([a-z_]+)`/g)].map((m) => m[1] as string) })
  }
  if (metrics.size === 0) throw new Error('docs/metrics.md: no metric table found')
  return metrics
}
