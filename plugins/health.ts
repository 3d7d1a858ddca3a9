import { getHeapStatistics } from 'node:v8'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import underPressure from '@fastify/under-pressure'
import fp from 'fastify-plugin'
import type { WscConfig } from '../lib/config.js'
import { evaluateReadiness, type PressureSample, type ReadinessCheck } from '../lib/readiness.js'
import { RETRY_AFTER_SECONDS } from './websocket.js'

export interface HealthPluginOptions {
  config: WscConfig
}

/** What `/ready` answers (200 when `status` is `ready`, else 503). */
export interface ReadinessBody {
  status: 'ready' | 'unavailable'
  nodeId: string
  checks: ReadinessCheck[]
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `@fastify/under-pressure`'s handler for this route; one that returns nothing lets the request through. */
    pressureHandler?: (request: FastifyRequest, reply: FastifyReply, type: string, value: number | undefined) => Promise<void> | void
  }
}

/** Under pressure a route still answers: it reports the pressure itself. */
const ANSWERS_UNDER_PRESSURE = { pressureHandler: () => {} }

/**
 * Liveness and readiness routes, and load shedding for new WebSocket upgrades. `@fastify/under-pressure`
 * samples event-loop delay, heap and RSS in a scope of its own, so the user's routes are never refused.
 */
async function health (fastify: FastifyInstance, { config }: HealthPluginOptions): Promise<void> {
  const settings = config.health
  const limits = {
    eventLoopDelayMs: settings.maxEventLoopDelay,
    heapUsedBytes: Math.floor(getHeapStatistics().heap_size_limit * settings.maxHeapUsedPercent / 100),
    rssBytes: settings.maxRss
  }
  let sample = (): PressureSample => ({ underPressure: false, eventLoopDelayMs: 0, heapUsedBytes: 0, rssBytes: 0, limits })

  await fastify.register(async function probes (scope) {
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

    scope.get(settings.livenessPath, { logLevel: 'silent', config: ANSWERS_UNDER_PRESSURE }, async () => ({ status: 'ok' }))

    scope.get(settings.readinessPath, { logLevel: 'silent', config: ANSWERS_UNDER_PRESSURE }, async (_request, reply): Promise<ReadinessBody> => {
      const readiness = evaluateReadiness(fastify.wsc.health(), sample(), { now: Date.now(), maxProbeAgeMs: settings.maxProbeAge })
      if (!readiness.ready) reply.code(503)
      return { status: readiness.ready ? 'ready' : 'unavailable', nodeId: fastify.wsc.nodeId, checks: readiness.checks }
    })
  })

  // Existing connections stay; a new one would add to the load.
  fastify.addHook('onRequest', async (request, reply) => {
    if (!request.ws || request.routeOptions.url !== config.websocket.path) return
    const load = sample()
    if (!load.underPressure) return
    request.log.warn({ statusCode: 503, reason: 'under_pressure', eventLoopDelayMs: load.eventLoopDelayMs, heapUsedBytes: load.heapUsedBytes, rssBytes: load.rssBytes }, 'upgrade refused: under pressure')
    return reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).send({ statusCode: 503, error: 'under pressure' })
  })
}

export default fp(health, { name: 'wsc-health', fastify: '5.x', dependencies: ['wsc-websocket'] })
