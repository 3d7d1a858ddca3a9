/**
 * A small PromQL evaluator for the subset our PrometheusRule and Grafana dashboard use, so tests can
 * evaluate their expressions against samples scraped from a running node: instant and range selectors
 * with label matchers, `sum`/`min`/`max`/`avg`/`count` with `by`/`without`, arithmetic and comparisons
 * (with `bool`, `on`/`ignoring`, `group_left`/`group_right`), `and`/`or`/`unless`, and the functions
 * `rate`, `increase`, `predict_linear` and `histogram_quantile`. Anything else is a parse or evaluation
 * error, never a silent empty result. Simplification: `rate` and `increase` do not extrapolate to the
 * window's edges as Prometheus does; they give the rise between the first and last sample in the window.
 */

export type Labels = Record<string, string>

/** A series in the store: `__name__` is one of its labels; a `null` value is a staleness marker. */
export interface Series { labels: Labels, points: Array<[seconds: number, value: number | null]> }

export interface Element { labels: Labels, value: number }
type Value = { kind: 'scalar', value: number } | { kind: 'vector', elements: Element[] } | { kind: 'matrix', series: Array<{ labels: Labels, points: Array<[number, number]> }> }

type Matcher = { name: string, op: '=' | '!=' | '=~' | '!~', value: string }
type Matching = { on: boolean, labels: string[], group?: 'left' | 'right', include: string[] }
export type Node =
  | { type: 'number', value: number }
  | { type: 'string', value: string }
  | { type: 'selector', name: string | undefined, matchers: Matcher[], range?: number }
  | { type: 'call', fn: string, args: Node[] }
  | { type: 'aggregate', op: string, by?: string[], without?: string[], expr: Node }
  | { type: 'binary', op: string, lhs: Node, rhs: Node, bool: boolean, matching?: Matching }
  | { type: 'negate', expr: Node }

const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'count'])
const COMPARISONS = new Set(['==', '!=', '>', '<', '>=', '<='])
/** Lowest precedence first. */
const LEVELS = [['or'], ['and', 'unless'], [...COMPARISONS], ['+', '-'], ['*', '/', '%']]
const DURATION = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 } as const
const LOOKBACK = 300

// ---- parsing ----

type Token = { kind: 'ident' | 'number' | 'string' | 'duration' | 'op', text: string }

function tokenize (source: string): Token[] {
  const tokens: Token[] = []
  const re = /\s+|#[^\n]*|(\d+(?:ms|[smhdwy]))(?![a-zA-Z0-9_])|(\d+(?:\.\d*)?(?:e[+-]?\d+)?|\.\d+)|([a-zA-Z_:][a-zA-Z0-9_:]*)|"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|(==|!=|>=|<=|=~|!~|[-+*/%(){}[\],=<>])/y
  let at = 0
  while (at < source.length) {
    re.lastIndex = at
    const m = re.exec(source)
    if (m === null) throw new Error(`PromQL: unexpected ${JSON.stringify(source.slice(at, at + 10))} in ${source}`)
    at = re.lastIndex
    if (m[1] !== undefined) tokens.push({ kind: 'duration', text: m[1] })
    else if (m[2] !== undefined) tokens.push({ kind: 'number', text: m[2] })
    else if (m[3] !== undefined) tokens.push({ kind: 'ident', text: m[3] })
    else if (m[4] !== undefined || m[5] !== undefined) tokens.push({ kind: 'string', text: (m[4] ?? m[5] ?? '').replace(/\\(.)/g, '$1') })
    else if (m[6] !== undefined) tokens.push({ kind: 'op', text: m[6] })
  }
  return tokens
}

function seconds (duration: string): number {
  const m = /^(\d+)(ms|[smhdwy])$/.exec(duration)
  if (m === null) throw new Error(`PromQL: bad duration ${duration}`)
  return Number(m[1]) * DURATION[m[2] as keyof typeof DURATION]
}

/** Parses a PromQL expression of the supported subset; throws on anything else. */
export function parse (source: string): Node {
  const tokens = tokenize(source)
  let i = 0
  const peek = (): Token | undefined => tokens[i]
  const next = (): Token => {
    const token = tokens[i++]
    if (token === undefined) throw new Error(`PromQL: unexpected end of ${source}`)
    return token
  }
  const expect = (text: string): void => {
    const token = next()
    if (token.text !== text) throw new Error(`PromQL: expected ${text}, got ${token.text} in ${source}`)
  }
  const isOp = (text: string): boolean => peek()?.text === text && peek()?.kind !== 'string'
  const labelList = (): string[] => {
    expect('(')
    const names: string[] = []
    while (!isOp(')')) {
      names.push(next().text)
      if (isOp(',')) next()
    }
    expect(')')
    return names
  }

  const binary = (level: number): Node => {
    if (level === LEVELS.length) return unary()
    let lhs = binary(level + 1)
    for (;;) {
      const token = peek()
      if (token === undefined || token.kind === 'string' || !(LEVELS[level] as string[]).includes(token.text)) return lhs
      next()
      const bool = isOp('bool') ? (next(), true) : false
      let matching: Matching | undefined
      if (isOp('on') || isOp('ignoring')) {
        const on = next().text === 'on'
        matching = { on, labels: labelList(), include: [] }
        if (isOp('group_left') || isOp('group_right')) {
          matching.group = next().text === 'group_left' ? 'left' : 'right'
          if (isOp('(')) matching.include = labelList()
        }
      }
      const rhs = binary(level + 1)
      lhs = matching === undefined ? { type: 'binary', op: token.text, lhs, rhs, bool } : { type: 'binary', op: token.text, lhs, rhs, bool, matching }
    }
  }

  const unary = (): Node => {
    if (isOp('-')) {
      next()
      return { type: 'negate', expr: unary() }
    }
    const node = primary()
    if (isOp('[')) {
      next()
      const duration = next()
      if (duration.kind !== 'duration' || node.type !== 'selector') throw new Error(`PromQL: bad range in ${source}`)
      expect(']')
      return { ...node, range: seconds(duration.text) }
    }
    return node
  }

  const primary = (): Node => {
    const token = next()
    if (token.kind === 'number') return { type: 'number', value: Number(token.text) }
    if (token.kind === 'string') return { type: 'string', value: token.text }
    if (token.text === '(') {
      const inner = binary(0)
      expect(')')
      return inner
    }
    if (token.text === '{') return selector(undefined)
    if (token.kind !== 'ident') throw new Error(`PromQL: unexpected ${token.text} in ${source}`)
    if (AGGREGATIONS.has(token.text) && (isOp('(') || isOp('by') || isOp('without'))) {
      let grouping: { by?: string[], without?: string[] } = {}
      if (isOp('by') || isOp('without')) grouping = { [next().text]: labelList() }
      expect('(')
      const expr = binary(0)
      expect(')')
      if (isOp('by') || isOp('without')) grouping = { [next().text]: labelList() }
      return { type: 'aggregate', op: token.text, ...grouping, expr }
    }
    if (isOp('(')) {
      next()
      const args: Node[] = []
      while (!isOp(')')) {
        args.push(binary(0))
        if (isOp(',')) next()
      }
      expect(')')
      return { type: 'call', fn: token.text, args }
    }
    return selector(token.text)
  }

  const selector = (name: string | undefined): Node => {
    const matchers: Matcher[] = []
    if (name === undefined || isOp('{')) {
      if (name !== undefined) next()
      while (!isOp('}')) {
        const label = next().text
        const op = next().text as Matcher['op']
        if (!['=', '!=', '=~', '!~'].includes(op)) throw new Error(`PromQL: bad matcher ${label}${op} in ${source}`)
        const value = next()
        if (value.kind !== 'string') throw new Error(`PromQL: matcher ${label} needs a string in ${source}`)
        matchers.push({ name: label, op, value: value.text })
        if (isOp(',')) next()
      }
      expect('}')
    }
    const metric = name ?? matchers.find((m) => m.name === '__name__' && m.op === '=')?.value
    return { type: 'selector', name: metric, matchers }
  }

  const node = binary(0)
  if (i !== tokens.length) throw new Error(`PromQL: unexpected ${tokens[i]?.text ?? ''} in ${source}`)
  return node
}

/** The metric names an expression selects. */
export function metricNames (node: Node): string[] {
  switch (node.type) {
    case 'selector': return node.name === undefined ? [] : [node.name]
    case 'call': return node.args.flatMap(metricNames)
    case 'aggregate': case 'negate': return metricNames(node.expr)
    case 'binary': return [...metricNames(node.lhs), ...metricNames(node.rhs)]
    default: return []
  }
}

// ---- evaluation ----

function matches (labels: Labels, matcher: Matcher): boolean {
  const value = labels[matcher.name] ?? ''
  switch (matcher.op) {
    case '=': return value === matcher.value
    case '!=': return value !== matcher.value
    case '=~': return new RegExp(`^(?:${matcher.value})$`).test(value)
    case '!~': return !new RegExp(`^(?:${matcher.value})$`).test(value)
  }
}

function withoutName (labels: Labels): Labels {
  const { __name__: _name, ...rest } = labels
  return rest
}

function pick (labels: Labels, names: string[]): Labels {
  return Object.fromEntries(names.filter((n) => labels[n] !== undefined).map((n) => [n, labels[n] as string]))
}

function omit (labels: Labels, names: string[]): Labels {
  return Object.fromEntries(Object.entries(labels).filter(([n]) => !names.includes(n)))
}

function key (labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)))
}

function compare (op: string, a: number, b: number): boolean {
  switch (op) {
    case '==': return a === b
    case '!=': return a !== b
    case '>': return a > b
    case '<': return a < b
    case '>=': return a >= b
    case '<=': return a <= b
  }
  throw new Error(`PromQL: ${op} is not a comparison`)
}

function arithmetic (op: string, a: number, b: number): number {
  switch (op) {
    case '+': return a + b
    case '-': return a - b
    case '*': return a * b
    case '/': return a / b
    case '%': return a % b
  }
  throw new Error(`PromQL: ${op} is not supported`)
}

/** Rises between successive samples; a drop is a counter reset, counted from 0. */
function counterIncrease (points: Array<[number, number]>): number {
  let total = 0
  for (let k = 1; k < points.length; k++) {
    const [, previous] = points[k - 1] as [number, number]
    const [, current] = points[k] as [number, number]
    total += current >= previous ? current - previous : current
  }
  return total
}

/** Least-squares fit of the points, evaluated `ahead` seconds after `at`. */
function predictLinear (points: Array<[number, number]>, at: number, ahead: number): number {
  const n = points.length
  const meanT = points.reduce((s, [t]) => s + t - at, 0) / n
  const meanV = points.reduce((s, [, v]) => s + v, 0) / n
  let cov = 0
  let variance = 0
  for (const [t, v] of points) {
    cov += (t - at - meanT) * (v - meanV)
    variance += (t - at - meanT) ** 2
  }
  const slope = cov / variance
  return meanV - slope * meanT + slope * ahead
}

/** Prometheus's bucketQuantile: linear interpolation inside the bucket where the rank falls. */
function bucketQuantile (q: number, buckets: Array<{ le: number, count: number }>): number {
  buckets.sort((a, b) => a.le - b.le)
  const last = buckets.at(-1)
  if (buckets.length < 2 || last?.le !== Infinity) return NaN
  if (q < 0) return -Infinity
  if (q > 1) return Infinity
  const total = last.count
  if (total === 0 || Number.isNaN(total)) return NaN
  const rank = q * total
  const index = buckets.findIndex((b) => b.count >= rank)
  const bucket = buckets[index] as { le: number, count: number }
  if (index === buckets.length - 1) return (buckets[buckets.length - 2] as { le: number }).le
  if (index === 0 && bucket.le <= 0) return bucket.le
  const start = index === 0 ? 0 : (buckets[index - 1] as { le: number }).le
  const below = index === 0 ? 0 : (buckets[index - 1] as { count: number }).count
  return start + (bucket.le - start) * ((rank - below) / (bucket.count - below))
}

/** Series scraped or written over time, and the evaluation of expressions against them. */
export class SeriesStore {
  readonly #series = new Map<string, Series>()

  /** Appends one sample at `at` (seconds); `null` marks the series stale from then on. */
  add (labels: Labels, at: number, value: number | null): void {
    const id = key(labels)
    let series = this.#series.get(id)
    if (series === undefined) this.#series.set(id, series = { labels, points: [] })
    series.points.push([at, value])
  }

  /**
   * Records a scrape of one target at `at`: every sample with the target's labels added (as Prometheus
   * adds `namespace`, `pod`, … from service discovery), or, when `samples` is undefined (the scrape
   * failed), staleness markers for every series of that target.
   */
  scrape (target: Labels, at: number, samples: Array<{ name: string, labels: Labels, value: number }> | undefined): void {
    if (samples === undefined) {
      for (const series of this.#series.values()) {
        if (Object.entries(target).every(([n, v]) => series.labels[n] === v)) series.points.push([at, null])
      }
      return
    }
    for (const sample of samples) this.add({ __name__: sample.name, ...sample.labels, ...target }, at, sample.value)
  }

  /** Evaluates `expr` at `at` seconds; a vector result is the list of its elements. */
  evaluate (expr: string | Node, at: number): Element[] | number {
    const result = this.#eval(typeof expr === 'string' ? parse(expr) : expr, at)
    if (result.kind === 'scalar') return result.value
    if (result.kind === 'vector') return result.elements
    throw new Error('PromQL: a range vector cannot be the result')
  }

  #select (node: Extract<Node, { type: 'selector' }>, from: number, to: number): Series[] {
    const matchers = node.name === undefined ? node.matchers : [{ name: '__name__', op: '=', value: node.name } as Matcher, ...node.matchers]
    return [...this.#series.values()].filter((s) => matchers.every((m) => matches(s.labels, m))).map((s) => ({
      labels: s.labels,
      points: s.points.filter(([t]) => t > from && t <= to)
    }))
  }

  #eval (node: Node, at: number): Value {
    switch (node.type) {
      case 'number': return { kind: 'scalar', value: node.value }
      case 'string': throw new Error('PromQL: a string is not a value here')
      case 'negate': {
        const value = this.#eval(node.expr, at)
        if (value.kind === 'scalar') return { kind: 'scalar', value: -value.value }
        return { kind: 'vector', elements: this.#vector(value).map((e) => ({ labels: withoutName(e.labels), value: -e.value })) }
      }
      case 'selector': {
        if (node.range !== undefined) {
          return {
            kind: 'matrix',
            series: this.#select(node, at - node.range, at)
              .map((s) => ({ labels: s.labels, points: s.points.filter((p): p is [number, number] => p[1] !== null) }))
              .filter((s) => s.points.length > 0)
          }
        }
        const elements: Element[] = []
        for (const series of this.#select(node, at - LOOKBACK, at)) {
          const last = series.points.at(-1)
          if (last !== undefined && last[1] !== null) elements.push({ labels: series.labels, value: last[1] })
        }
        return { kind: 'vector', elements }
      }
      case 'call': return this.#call(node, at)
      case 'aggregate': return this.#aggregate(node, at)
      case 'binary': return this.#binary(node, at)
    }
  }

  #vector (value: Value): Element[] {
    if (value.kind !== 'vector') throw new Error(`PromQL: expected an instant vector, got a ${value.kind}`)
    return value.elements
  }

  #call (node: Extract<Node, { type: 'call' }>, at: number): Value {
    const args = node.args.map((arg) => this.#eval(arg, at))
    const matrix = (): Extract<Value, { kind: 'matrix' }>['series'] => {
      const first = args[0]
      if (first?.kind !== 'matrix') throw new Error(`PromQL: ${node.fn} needs a range vector`)
      return first.series.filter((s) => s.points.length >= 2)
    }
    const scalar = (value: Value | undefined): number => {
      if (value?.kind !== 'scalar') throw new Error(`PromQL: ${node.fn} needs a scalar`)
      return value.value
    }
    switch (node.fn) {
      case 'increase':
        return { kind: 'vector', elements: matrix().map((s) => ({ labels: withoutName(s.labels), value: counterIncrease(s.points) })) }
      case 'rate': {
        const range = (node.args[0] as { range: number }).range
        return { kind: 'vector', elements: matrix().map((s) => ({ labels: withoutName(s.labels), value: counterIncrease(s.points) / range })) }
      }
      case 'predict_linear': {
        const ahead = scalar(args[1])
        return { kind: 'vector', elements: matrix().map((s) => ({ labels: withoutName(s.labels), value: predictLinear(s.points, at, ahead) })) }
      }
      case 'histogram_quantile': {
        const q = scalar(args[0])
        const groups = new Map<string, { labels: Labels, buckets: Array<{ le: number, count: number }> }>()
        for (const e of this.#vector(args[1] as Value)) {
          if (e.labels.le === undefined) continue
          const labels = omit(withoutName(e.labels), ['le'])
          const id = key(labels)
          if (!groups.has(id)) groups.set(id, { labels, buckets: [] })
          groups.get(id)?.buckets.push({ le: e.labels.le === '+Inf' ? Infinity : Number(e.labels.le), count: e.value })
        }
        return { kind: 'vector', elements: [...groups.values()].map((g) => ({ labels: g.labels, value: bucketQuantile(q, g.buckets) })) }
      }
    }
    throw new Error(`PromQL: function ${node.fn} is not implemented by this evaluator`)
  }

  #aggregate (node: Extract<Node, { type: 'aggregate' }>, at: number): Value {
    const groups = new Map<string, { labels: Labels, values: number[] }>()
    for (const e of this.#vector(this.#eval(node.expr, at))) {
      const labels = node.by !== undefined ? pick(e.labels, node.by) : omit(withoutName(e.labels), node.without ?? Object.keys(e.labels))
      const id = key(labels)
      if (!groups.has(id)) groups.set(id, { labels, values: [] })
      groups.get(id)?.values.push(e.value)
    }
    const reduce = (values: number[]): number => {
      const real = values.filter((v) => !Number.isNaN(v))
      switch (node.op) {
        case 'sum': return values.reduce((s, v) => s + v, 0)
        case 'avg': return values.reduce((s, v) => s + v, 0) / values.length
        case 'count': return values.length
        // Prometheus's min and max skip NaN unless every value is NaN.
        case 'min': return real.length === 0 ? NaN : Math.min(...real)
        case 'max': return real.length === 0 ? NaN : Math.max(...real)
      }
      throw new Error(`PromQL: aggregation ${node.op} is not implemented`)
    }
    return { kind: 'vector', elements: [...groups.values()].map((g) => ({ labels: g.labels, value: reduce(g.values) })) }
  }

  #binary (node: Extract<Node, { type: 'binary' }>, at: number): Value {
    const lhs = this.#eval(node.lhs, at)
    const rhs = this.#eval(node.rhs, at)
    const comparison = COMPARISONS.has(node.op)
    const combine = (a: number, b: number): number | undefined => {
      if (!comparison) return arithmetic(node.op, a, b)
      if (node.bool) return compare(node.op, a, b) ? 1 : 0
      return compare(node.op, a, b) ? a : undefined
    }
    if (lhs.kind === 'scalar' && rhs.kind === 'scalar') {
      if (comparison && !node.bool) throw new Error('PromQL: comparisons between scalars need bool')
      return { kind: 'scalar', value: combine(lhs.value, rhs.value) as number }
    }
    if (lhs.kind === 'scalar' || rhs.kind === 'scalar') {
      const elements: Element[] = []
      for (const e of this.#vector(lhs.kind === 'scalar' ? rhs : lhs)) {
        const [a, b] = lhs.kind === 'scalar' ? [lhs.value, e.value] : [e.value, (rhs as { value: number }).value]
        const value = combine(a, b)
        // A filtering comparison keeps the vector's own sample value.
        if (value !== undefined) elements.push({ labels: comparison && !node.bool ? e.labels : withoutName(e.labels), value: comparison && !node.bool ? e.value : value })
      }
      return { kind: 'vector', elements }
    }
    const left = this.#vector(lhs)
    const right = this.#vector(rhs)
    const matching = node.matching ?? { on: false, labels: [], include: [] }
    const signature = (labels: Labels): string => key(matching.on ? pick(labels, matching.labels) : omit(withoutName(labels), matching.labels))
    if (['and', 'or', 'unless'].includes(node.op)) {
      const rightSigs = new Set(right.map((e) => signature(e.labels)))
      if (node.op === 'and') return { kind: 'vector', elements: left.filter((e) => rightSigs.has(signature(e.labels))) }
      if (node.op === 'unless') return { kind: 'vector', elements: left.filter((e) => !rightSigs.has(signature(e.labels))) }
      const leftSigs = new Set(left.map((e) => signature(e.labels)))
      return { kind: 'vector', elements: [...left, ...right.filter((e) => !leftSigs.has(signature(e.labels)))] }
    }
    const [many, one] = matching.group === 'right' ? [right, left] : [left, right]
    const bySignature = new Map<string, Element>()
    for (const e of one) {
      const sig = signature(e.labels)
      if (bySignature.has(sig)) throw new Error(`PromQL: many-to-many matching: several series on the ${matching.group === 'right' ? 'left' : 'right'} for ${sig}`)
      bySignature.set(sig, e)
    }
    const seen = new Set<string>()
    const elements: Element[] = []
    for (const e of many) {
      const sig = signature(e.labels)
      const other = bySignature.get(sig)
      if (other === undefined) continue
      if (matching.group === undefined) {
        if (seen.has(sig)) throw new Error(`PromQL: multiple matches for ${sig}: many-to-one matching needs group_left or group_right`)
        seen.add(sig)
      }
      const [l, r] = matching.group === 'right' ? [other, e] : [e, other]
      const value = combine(l.value, r.value)
      if (value === undefined) continue
      // One-to-one with on(): only the matching labels remain; otherwise the "many" side's labels.
      let labels = matching.group === undefined && matching.on ? pick(e.labels, matching.labels) : omit(e.labels, matching.on || matching.group !== undefined ? [] : matching.labels)
      if (!comparison || node.bool) labels = withoutName(labels)
      labels = { ...labels, ...pick(other.labels, matching.include) }
      elements.push({ labels, value: comparison && !node.bool ? l.value : value })
    }
    return { kind: 'vector', elements }
  }
}
