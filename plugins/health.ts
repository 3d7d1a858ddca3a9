/**
 * The `health` plugin: liveness and readiness routes for the kubelet, and load shedding of new
 * upgrades under pressure.
 */
import { getHeapStatistics } from 'node:v8'
import type { FastifyInstance } from 'fastify'
import underPressure from '@fastify/under-pressure'
import fp from 'fastify-plugin'
import { resolveSection, type ConfigSectionInput, type WscConfig } from '../lib/config.js'
import { evaluateReadiness, type PressureSample, type ReadinessCheck } from '../lib/readiness.js'
import { RETRY_AFTER_SECONDS } from './websocket.js'

/**
 * Options of the `health` plugin (the `health.*` keys): the two paths, and the pressure limits of the
 * `@fastify/under-pressure` it registers when the app has none of its own.
 */
export type HealthPluginOptions = Omit<ConfigSectionInput<'health'>, 'enabled'>

/** What `/ready` answers (200 when `status` is `ready`, else 503). */
export interface ReadinessBody {
  status: 'ready' | 'unavailable'
  nodeId: string
  checks: ReadinessCheck[]
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `@fastify/under-pressure`'s handler for this route; one that returns nothing lets the request through. */
    pressureHandler?: (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply, type: string, value: number | undefined) => Promise<void> | void
  }
}

/** Under pressure a route still answers: it reports the pressure itself. */
const ANSWERS_UNDER_PRESSURE = { pressureHandler: () => {} }

/** The load as `@fastify/under-pressure` measures it; the limits are 0 (unknown) when they are the app's. */
type Sampler = () => PressureSample

/**
 * Samples through an `@fastify/under-pressure` of the app's when it has one (its limits and its 503s
 * apply), else through one of ours, in a scope of its own so the app's routes are never refused.
 */
async function pressureSampler (fastify: FastifyInstance, settings: WscConfig['health']): Promise<Sampler> {
  if (fastify.hasDecorator('isUnderPressure')) {
    const limits = { eventLoopDelayMs: 0, heapUsedBytes: 0, rssBytes: 0 }
    const app = fastify as unknown as { memoryUsage: () => { eventLoopDelay: number, heapUsed: number, rssBytes: number }, isUnderPressure: () => boolean }
    return () => {
      const usage = app.memoryUsage()
      return { underPressure: app.isUnderPressure(), eventLoopDelayMs: usage.eventLoopDelay, heapUsedBytes: usage.heapUsed, rssBytes: usage.rssBytes, limits }
    }
  }
  const limits = {
    eventLoopDelayMs: settings.maxEventLoopDelay,
    heapUsedBytes: Math.floor(getHeapStatistics().heap_size_limit * settings.maxHeapUsedPercent / 100),
    rssBytes: settings.maxRss
  }
  let sample: Sampler = () => ({ underPressure: false, eventLoopDelayMs: 0, heapUsedBytes: 0, rssBytes: 0, limits })
  await fastify.register(async function wscPressure (scope) {
    await scope.register(underPressure, {
      maxEventLoopDelay: limits.eventLoopDelayMs,
      maxHeapUsedBytes: limits.heapUsedBytes,
      maxRssBytes: limits.rssBytes,
      sampleInterval: settings.sampleInterval,
      retryAfter: RETRY_AFTER_SECONDS
    })
    sample = () => {
      const usage = scope.memoryUsage()
      return { underPressure: scope.isUnderPressure(), eventLoopDelayMs: usage.eventLoopDelay, heapUsedBytes: usage.heapUsed, rssBytes: usage.rssBytes, limits }
    }
  })
  return () => sample()
}

/**
 * The kubelet's probes: liveness (`/health`: the process answers, and its node did not fail to start)
 * and readiness (`/ready`: the node started, its router and store are up, it is not draining and not
 * under pressure), and load shedding
 * for new WebSocket upgrades. A path the app already serves is left to the app, with a log line.
 */
async function registerHealth (fastify: FastifyInstance, options: HealthPluginOptions): Promise<void> {
  const settings = resolveSection('health', options, 'wsc-health')
  const sample = await pressureSampler(fastify, settings)

  if (fastify.hasRoute({ method: 'GET', url: settings.livenessPath })) {
    fastify.log.info({ path: settings.livenessPath }, 'fastify-wsc: the app serves its own liveness route; set livenessPath to add ours elsewhere')
  } else {
    // A node whose start failed never starts in this process: liveness fails so the kubelet restarts it.
    fastify.get(settings.livenessPath, { logLevel: 'silent', config: ANSWERS_UNDER_PRESSURE }, async (_request, reply) => {
      const failed = fastify.wsc.health().failed
      if (failed === undefined) return { status: 'ok' }
      return reply.code(503).send({ status: 'failed', detail: `start-up failed: ${failed}` })
    })
  }

  if (fastify.hasRoute({ method: 'GET', url: settings.readinessPath })) {
    fastify.log.warn({ path: settings.readinessPath }, 'fastify-wsc: the app serves its own readiness route, which does not see the WebSocket node; set readinessPath to add ours elsewhere')
  } else {
    fastify.get(settings.readinessPath, { logLevel: 'silent', config: ANSWERS_UNDER_PRESSURE }, async (_request, reply): Promise<ReadinessBody> => {
      const readiness = evaluateReadiness(fastify.wsc.health(), sample(), { now: Date.now(), maxProbeAgeMs: settings.maxProbeAge })
      if (!readiness.ready) reply.code(503)
      return { status: readiness.ready ? 'ready' : 'unavailable', nodeId: fastify.wsc.nodeId, checks: readiness.checks }
    })
  }

  // Existing connections stay; a new one would add to the load. The app's own WebSocket routes are not ours to refuse.
  fastify.addHook('onRequest', async (request, reply) => {
    if (!request.ws || request.routeOptions.config.wscUpgrade !== true) return
    const load = sample()
    if (!load.underPressure) return
    request.log.warn({ statusCode: 503, reason: 'under_pressure', eventLoopDelayMs: load.eventLoopDelayMs, heapUsedBytes: load.heapUsedBytes, rssBytes: load.rssBytes }, 'upgrade refused: under pressure')
    return reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).send({ statusCode: 503, error: 'Service Unavailable', message: 'under pressure' })
  })
}

/** The `health` plugin (`wsc-health`): `/health` and `/ready` for the kubelet's probes. */
export const health = fp(registerHealth, { name: 'wsc-health', fastify: '5.x', dependencies: ['wsc-websocket'] })
export default health
