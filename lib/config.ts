/**
 * Loading the configuration: validating plugin options, and turning an environment and config.yaml
 * into options (`loadConfig`).
 */
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { CONFIG_KEYS, type ConfigKey, type ConfigSectionInput, type WscConfig, type WscConfigInput } from './config-keys.js'
import { ConfigError } from './errors.js'
import { KIB, MIB, SECOND } from './units.js'

export { CONFIG_KEYS, type ConfigKey, type ConfigSectionInput, type WscConfig, type WscConfigInput }

const camel = (snake: string): string => snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())

const DURATION_UNITS: Record<string, number> = { ms: 1, s: SECOND, m: 60 * SECOND, h: 3600 * SECOND, d: 86_400 * SECOND }
const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1000, kb: 1000, kib: KIB, m: 1000 * 1000, mb: 1000 * 1000, mib: MIB, g: 1e9, gb: 1e9, gib: 1024 * MIB }

function describeAllowed (spec: ConfigKey): string {
  const range = spec.min !== undefined && spec.max !== undefined ? ` from ${spec.min} to ${spec.max}` : ''
  switch (spec.kind) {
    case 'int': return `an integer${range}`
    case 'duration': return `a duration such as 500ms, 5s, 2m, 1h, 7d (or ms as a number)${range === '' ? '' : ` from ${spec.min} ms to ${spec.max} ms`}`
    case 'bytes': return `a size such as 65536, 64KiB, 4MiB${range === '' ? '' : ` from ${spec.min} to ${spec.max} bytes`}`
    case 'bool': return 'true or false'
    case 'enum': return `one of ${spec.values?.join(', ')}`
    case 'list': return 'a list (comma-separated in an env var)'
    default: return 'a string'
  }
}

type Coerced = { ok: true, value: unknown } | { ok: false }

function coerce (spec: ConfigKey, raw: unknown): Coerced {
  const bounded = (n: number): Coerced =>
    Number.isSafeInteger(n) && (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max)
      ? { ok: true, value: n }
      : { ok: false }
  switch (spec.kind) {
    case 'string':
      return typeof raw === 'string' || typeof raw === 'number' ? { ok: true, value: String(raw) } : { ok: false }
    case 'int':
      if (typeof raw === 'number') return bounded(raw)
      if (typeof raw === 'string' && /^-?\d+$/.test(raw.trim())) return bounded(Number(raw.trim()))
      return { ok: false }
    case 'duration': {
      if (typeof raw === 'number') return bounded(raw)
      const m = typeof raw === 'string' ? /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(raw.trim()) : null
      if (m === null) return { ok: false }
      return bounded(Math.round(Number(m[1]) * (DURATION_UNITS[m[2] ?? 'ms'] ?? 1)))
    }
    case 'bytes': {
      if (typeof raw === 'number') return bounded(raw)
      const m = typeof raw === 'string' ? /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw.trim()) : null
      const unit = m === null ? undefined : BYTE_UNITS[(m[2] ?? '').toLowerCase()]
      if (m === null || unit === undefined) return { ok: false }
      return bounded(Math.round(Number(m[1]) * unit))
    }
    case 'bool':
      if (typeof raw === 'boolean') return { ok: true, value: raw }
      if (typeof raw === 'string' && /^(true|1|yes|on)$/i.test(raw.trim())) return { ok: true, value: true }
      if (typeof raw === 'string' && /^(false|0|no|off)$/i.test(raw.trim())) return { ok: true, value: false }
      return { ok: false }
    case 'enum':
      return typeof raw === 'string' && spec.values?.includes(raw.trim()) === true ? { ok: true, value: raw.trim() } : { ok: false }
    case 'list':
      if (Array.isArray(raw) && raw.every((item) => typeof item === 'string')) return { ok: true, value: raw.map((s: string) => s.trim()).filter(Boolean) }
      if (typeof raw === 'string') return { ok: true, value: raw.split(',').map((s) => s.trim()).filter(Boolean) }
      return { ok: false }
  }
}

/** Expands `${VAR}` and `${VAR:-default}` from `env` in a string. */
export function expandEnv (text: string, env: Readonly<Record<string, string | undefined>>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_, name: string, fallback: string | undefined) => {
    const value = env[name]
    return value === undefined || value === '' ? (fallback ?? '') : value
  })
}

function expandTree (value: unknown, env: Readonly<Record<string, string | undefined>>): unknown {
  if (typeof value === 'string') return expandEnv(value, env)
  if (Array.isArray(value)) return value.map((item) => expandTree(item, env))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandTree(v, env)]))
  }
  return value
}

function showValue (raw: unknown): string {
  const text = typeof raw === 'string' ? JSON.stringify(raw) : JSON.stringify(raw) ?? String(raw)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

/** Where a reader of a config error finds every key: the package ships docs/ (package.json `files`). */
const CONFIG_DOCS = 'node_modules/fastify-wsc/docs/configuration.md (https://github.com/fastify-wsc/fastify-wsc/blob/main/docs/configuration.md)'

const SECTIONS = ['server', 'redis', 'distributed', 'websocket', 'store', 'mysql', 'health', 'metrics', 'drain'] as const

/** Flattens `{ websocket: { max_connections: 1 } }` into `websocket.max_connections`, rejecting unknown keys. */
function flatten (tree: unknown, origin: string, naming: 'snake' | 'camel'): Map<string, unknown> {
  const out = new Map<string, unknown>()
  if (tree === undefined || tree === null) return out
  if (typeof tree !== 'object' || Array.isArray(tree)) {
    throw new ConfigError(`config: ${origin} must be a mapping of sections (${SECTIONS.join(', ')})`)
  }
  const known = new Map(CONFIG_KEYS.map((spec) => {
    const [section = '', name = ''] = spec.key.split('.')
    return [naming === 'snake' ? spec.key : `${section}.${camel(name)}`, spec.key]
  }))
  for (const [section, body] of Object.entries(tree)) {
    if (body === undefined || body === null) continue
    if (typeof body !== 'object' || Array.isArray(body)) {
      throw new ConfigError(`config: ${section} in ${origin} must be a mapping, got ${showValue(body)}`)
    }
    for (const [name, value] of Object.entries(body)) {
      const canonical = known.get(`${section}.${name}`)
      if (canonical === undefined) {
        throw new ConfigError(`config: unknown key ${section}.${name} in ${origin}; the keys are in ${CONFIG_DOCS}`)
      }
      if (value !== undefined) out.set(canonical, value)
    }
  }
  return out
}

/** One place a value may come from, highest precedence first. */
interface Source {
  /** For errors: `plugin option`, `WSC_MAX_CONNECTIONS`, the file name. */
  origin: (spec: ConfigKey) => string
  value: (spec: ConfigKey) => unknown
}

/** Resolves every key of `sections` from the first source that has it, else its default; validates each. */
function resolve (sources: Source[], sections: ReadonlySet<string>, useDeployDefaults: boolean): Record<string, Record<string, unknown>> {
  const config: Record<string, Record<string, unknown>> = {}
  for (const spec of CONFIG_KEYS) {
    const [section = '', name = ''] = spec.key.split('.')
    if (!sections.has(section)) continue
    config[section] ??= {}
    let raw: unknown
    let origin = 'default'
    for (const source of sources) {
      raw = source.value(spec)
      if (raw !== undefined) {
        origin = source.origin(spec)
        break
      }
    }
    raw ??= useDeployDefaults && spec.deployDefault !== undefined ? spec.deployDefault : spec.default
    if (raw === undefined) continue
    const result = coerce(spec, raw)
    if (!result.ok) {
      throw new ConfigError(`config: ${spec.key} = ${showValue(raw)} (from ${origin}) is invalid: expected ${describeAllowed(spec)}`)
    }
    config[section][camel(name)] = result.value
  }
  return config
}

/** A drain must leave time for the last close handshakes within the shutdown budget. */
function checkDrain (config: WscConfig): WscConfig {
  const { drain, websocket: { closeTimeout } } = config
  if (drain.delay + drain.window + closeTimeout >= drain.timeout) {
    throw new ConfigError(`config: drain.delay + drain.window (${drain.delay + drain.window} ms) leave no time for the close handshakes within drain.timeout (${drain.timeout} ms): expected at least websocket.close_timeout (${closeTimeout} ms) to spare`)
  }
  return config
}

const ALL_SECTIONS: ReadonlySet<string> = new Set(SECTIONS)

/** A source over flattened values; in a file, a key whose `${VAR}` expanded to nothing counts as unset. */
function mapSource (values: Map<string, unknown>, origin: string, emptyIsUnset = false): Source {
  return {
    origin: () => origin,
    value: (spec) => {
      const value = values.get(spec.key)
      return emptyIsUnset && value === '' ? undefined : value
    }
  }
}

export interface LoadConfigInput {
  /** The environment to read (pass `process.env`): the guide's variables (`REDIS_ADDR`, `POD_NAME`, …). */
  env: Readonly<Record<string, string | undefined>>
  /** Path of config.yaml; default `WSC_CONFIG` from `env`; none when neither is set. */
  file?: string | undefined
  /** Values that win over the environment and the file (camelCase keys, as the plugin options). */
  options?: WscConfigInput | undefined
}

/**
 * Turns the environment variables and `config.yaml` of a deployment into the options of
 * `fastify.register(wsc, options)`, with precedence options > environment > config.yaml > defaults
 * (the example app's: metrics on 0.0.0.0:8081). The plugins never read the environment or a file
 * themselves: an app calls this, or passes its own options.
 * Throws `WSC_ERR_CONFIG` with one line naming the key, the bad value, its origin and what is allowed.
 */
export function loadConfig (input: LoadConfigInput): WscConfig {
  const env = input.env
  const file = input.file ?? (env.WSC_CONFIG === '' ? undefined : env.WSC_CONFIG)
  let fromFile = new Map<string, unknown>()
  if (file !== undefined) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      throw new ConfigError(`config: cannot read ${file} (WSC_CONFIG): ${(err as Error).message}`)
    }
    let parsed: unknown
    try {
      parsed = parseYaml(text)
    } catch (err) {
      throw new ConfigError(`config: ${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`)
    }
    fromFile = flatten(expandTree(parsed, env), file, 'snake')
  }
  const fromEnv: Source = {
    origin: (spec) => spec.env?.find((name) => nonEmpty(env[name])) ?? 'environment',
    value: (spec) => {
      const name = spec.env?.find((candidate) => nonEmpty(env[candidate]))
      return name === undefined ? undefined : env[name]
    }
  }
  const sources = [mapSource(flatten(input.options, 'plugin options', 'camel'), 'plugin option'), fromEnv, mapSource(fromFile, file ?? 'config file', true)]
  return checkDrain(resolve(sources, ALL_SECTIONS, true) as unknown as WscConfig)
}

/**
 * The plugins' view of their options: every key validated, the plugins' defaults for the rest. Reads
 * nothing else. Throws `WSC_ERR_CONFIG` naming the key, the value and what is allowed.
 */
export function resolveConfig (options: WscConfigInput = {}): WscConfig {
  return checkDrain(resolve([mapSource(flatten(options, 'plugin options', 'camel'), 'plugin option')], ALL_SECTIONS, false) as unknown as WscConfig)
}

/**
 * One section of the configuration from a plugin's own options (`plugin` names it in errors): known
 * keys validated, defaults for the rest. Keys of other sections are not looked at.
 */
export function resolveSection<S extends keyof WscConfig> (section: S, options: ConfigSectionInput<S> | undefined, plugin: string): WscConfig[S] {
  const values = flatten({ [section]: options ?? {} }, `the options of ${plugin}`, 'camel')
  return resolve([mapSource(values, `option of ${plugin}`)], new Set([section]), false)[section] as unknown as WscConfig[S]
}

function nonEmpty (value: string | undefined): boolean {
  return value !== undefined && value.trim() !== ''
}
