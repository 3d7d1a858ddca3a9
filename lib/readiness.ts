/**
 * What `/ready` answers: readiness decided from the node's health, its router's and store's, and the
 * process load.
 */
import type { StoreStatus } from './store/message-store.js'
import type { RouterStatus } from './router/router.js'
import { MIB } from './units.js'

/** A node's own view of itself and its dependencies, as `app.wsc.health()` reports it. */
export interface NodeHealth {
  /** The router connected and the node registered (after `listen`/`ready`, until a drain or close). */
  started: boolean
  /**
   * Why the node's start failed (Redis refused the credentials, or was not reachable in time); it will
   * not start in this process: restart it. Undefined unless a start failed.
   */
  failed?: string | undefined
  /** `drain()` began: no new connections, live ones are being moved to other nodes. */
  draining: boolean
  /** Local connections. */
  connections: number
  /** Local rooms with at least one member (each a subscription with Redis). */
  rooms: number
  router: RouterStatus
  /** Undefined when the store has no `status()`. */
  store: StoreStatus | undefined
}

/** The process load as `@fastify/under-pressure` sampled it, with the configured limits (0 = off). */
export interface PressureSample {
  underPressure: boolean
  eventLoopDelayMs: number
  heapUsedBytes: number
  rssBytes: number
  limits: { eventLoopDelayMs: number, heapUsedBytes: number, rssBytes: number }
}

export interface ReadinessCheck {
  name: 'node' | 'router' | 'store' | 'pressure'
  state: 'pass' | 'fail'
  /** Router: last Pub/Sub probe round trip; store: its own latency; pressure: event-loop delay. */
  latencyMs: number | null
  detail: string
}

export interface Readiness {
  ready: boolean
  checks: ReadinessCheck[]
}

const round = (ms: number): number => Math.round(ms * 100) / 100

/**
 * Decides readiness: the node started and is not draining, the router is up and its Pub/Sub probe (when
 * it has one) came back within `maxProbeAgeMs`, the store (when it reports) is up, and the process is
 * not under pressure.
 */
export function evaluateReadiness (health: NodeHealth, pressure: PressureSample, options: { now: number, maxProbeAgeMs: number }): Readiness {
  const checks: ReadinessCheck[] = []
  checks.push({
    name: 'node',
    state: health.started && !health.draining ? 'pass' : 'fail',
    latencyMs: null,
    detail: health.draining ? 'draining' : health.started ? `accepting connections (${health.connections} open)` : health.failed !== undefined ? `start-up failed: ${health.failed}` : 'starting'
  })

  const { router } = health
  const probeAge = router.probeAt === null ? null : options.now - router.probeAt
  const probeStale = probeAge !== null && probeAge > options.maxProbeAgeMs
  checks.push({
    name: 'router',
    state: router.up && !probeStale ? 'pass' : 'fail',
    latencyMs: router.probeLatencyMs === null ? null : round(router.probeLatencyMs),
    detail: probeStale ? `${router.detail}; last Pub/Sub probe came back ${Math.round(probeAge / 1000)} s ago` : router.detail
  })

  if (health.store !== undefined) {
    checks.push({
      name: 'store',
      state: health.store.up ? 'pass' : 'fail',
      latencyMs: health.store.latencyMs === undefined ? null : round(health.store.latencyMs),
      detail: health.store.detail
    })
  }

  const { limits } = pressure
  const over: string[] = []
  if (limits.eventLoopDelayMs > 0 && pressure.eventLoopDelayMs > limits.eventLoopDelayMs) over.push(`event-loop delay over ${limits.eventLoopDelayMs} ms`)
  if (limits.heapUsedBytes > 0 && pressure.heapUsedBytes > limits.heapUsedBytes) over.push(`heap over ${Math.round(limits.heapUsedBytes / MIB)} MiB`)
  if (limits.rssBytes > 0 && pressure.rssBytes > limits.rssBytes) over.push(`RSS over ${Math.round(limits.rssBytes / MIB)} MiB`)
  // A loop blocked through a whole sample interval leaves no delay sample: under-pressure reports Infinity.
  const delay = Number.isFinite(pressure.eventLoopDelayMs) ? `event-loop delay ${round(pressure.eventLoopDelayMs)} ms` : 'event loop blocked for a whole sample interval'
  const load = `${delay}, heap ${Math.round(pressure.heapUsedBytes / MIB)} MiB, RSS ${Math.round(pressure.rssBytes / MIB)} MiB`
  checks.push({
    name: 'pressure',
    state: pressure.underPressure ? 'fail' : 'pass',
    latencyMs: round(pressure.eventLoopDelayMs),
    detail: pressure.underPressure ? `under pressure (${over.join(', ') || 'a limit was exceeded'}): ${load}` : load
  })

  return { ready: checks.every((check) => check.state === 'pass'), checks }
}
