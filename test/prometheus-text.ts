/** One sample of a Prometheus text exposition. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/gy
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

/** Like Prometheus (Go's ParseFloat): NaN and Inf in any case. */
function parseValue (text: string): number {
  const lower = text.toLowerCase()
  if (lower === '+inf' || lower === 'inf') return Infinity
  if (lower === '-inf') return -Infinity
  if (lower === 'nan') return NaN
  const value = Number(text)
  if (Number.isNaN(value)) throw new Error(`not a sample value: ${text}`)
  return value
}

/**
 * Parses the Prometheus text format (version 0.0.4) strictly: every line is a HELP, a TYPE, or a sample
 * of a metric family whose TYPE came first. Throws on anything else.
 */
export function parsePrometheusText (text: string): Sample[] {
  const samples: Sample[] = []
  const families = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    if (line.startsWith('# HELP ')) continue
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ')
      if (name === undefined || type === undefined || !TYPES.has(type)) throw new Error(`bad TYPE line: ${line}`)
      families.set(name, type)
      continue
    }
    if (line.startsWith('#')) continue
    const match = SAMPLE.exec(line)
    if (match === null) throw new Error(`bad sample line: ${line}`)
    const [, name = '', labelText = '', valueText = ''] = match
    const family = [name, name.replace(/_(bucket|sum|count|total|created)$/, '')].find((n) => families.has(n))
    if (family === undefined) throw new Error(`sample before its TYPE line: ${line}`)
    const labels: Record<string, string> = {}
    LABEL.lastIndex = 0
    while (LABEL.lastIndex < labelText.length) {
      const label = LABEL.exec(labelText)
      if (label === null) throw new Error(`bad labels: ${line}`)
      labels[label[1] as string] = (label[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    }
    samples.push({ name, labels, value: parseValue(valueText) })
  }
  return samples
}

/** The value of the one sample named `name` whose labels include `labels`; undefined when there is none. */
export function valueOf (samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return found[0]?.value
}
