/**
 * The `metrics` plugin: the node's Prometheus metrics in a registry, served on a port of their own
 * only when given one.
 */
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyMetrics from 'fastify-metrics'
import fp from 'fastify-plugin'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type GaugeConfiguration } from 'prom-client'
import type { DropReason } from '../lib/node/client-connection.js'
import { resolveSection, type ConfigSectionInput } from '../lib/config.js'
import { OptionError } from '../lib/errors.js'
import type { FrameKind, TargetKind, WscObserver } from '../lib/node/observer.js'

/**
 * Options of the `metrics` plugin: `port` and `host` (the `metrics.*` keys) for a server of its own,
 * else none; the registry to fill; and what to measure besides the node's own metrics.
 */
export interface MetricsPluginOptions extends Omit<ConfigSectionInput<'metrics'>, 'enabled'> {
  /**
   * The registry to register the metrics in; default the one the app's fastify-metrics serves (prom-client's
   * global registry) when the app registered it, else a new one. Either way `app.wscMetrics.registry`.
   */
  registry?: Registry | undefined
  /** prom-client's process metrics (CPU, memory, event loop, GC) in the registry; default: only with a port of its own. */
  processMetrics?: boolean | undefined
  /** Request duration of every route of the app, through fastify-metrics; default false (refused if the app registered fastify-metrics). */
  routeMetrics?: boolean | undefined
}

/** The node's Prometheus metrics. */
export interface WscMetrics {
  /** The registry with every metric of docs/metrics.md: serve it from a route of the app's when there is no metrics port. */
  readonly registry: Registry
  /** The port of the metrics server once the app is ready (the bound one when `port` is 0); undefined without one. */
  readonly port: number | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Prometheus metrics: the registry and the metrics server's port. */
    wscMetrics: WscMetrics
  }
}

const FRAME_KINDS: readonly FrameKind[] = ['ping', 'join', 'leave', 'publish', 'ack', 'invalid']
const TARGET_KINDS: readonly TargetKind[] = ['user', 'room', 'connection', 'broadcast']
const DROP_REASONS: readonly DropReason[] = ['slow_consumer', 'rate_limit', 'payload']
/** Close codes a client may pick are unbounded (3000-4999): anything not in RFC 6455 is `other`. */
const KNOWN_CLOSE_CODES = new Set([1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015])
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

/**
 * What Prometheus scrapes: the node's metrics in a registry (the app's or one of its own), served at
 * `/metrics` by a second Fastify instance only when given a port (never the public port); process and
 * route metrics only when asked.
 */
async function registerMetrics (fastify: FastifyInstance, options: MetricsPluginOptions): Promise<void> {
  const { registry: given, processMetrics, routeMetrics = false, ...serverOptions } = options
  const settings = resolveSection('metrics', serverOptions, 'wsc-metrics')
  // The app's fastify-metrics serves its prom-client's global registry at its endpoint: the node's metrics join it there.
  const shared = given ?? (fastify.hasDecorator('metrics') ? fastify.metrics.client.register : undefined)
  const registry = shared ?? new Registry()
  const registers = [registry]
  const node = fastify.wsc

  if (processMetrics ?? (settings.port !== undefined && shared === undefined)) collectDefaultMetrics({ register: registry })
  if (routeMetrics) {
    if (fastify.hasDecorator('metrics')) {
      throw new OptionError('routeMetrics', 'the app already registered fastify-metrics, which measures its routes: leave routeMetrics off')
    }
    await fastify.register(fastifyMetrics.default, {
      endpoint: null,
      defaultMetrics: { enabled: false },
      routeMetrics: {
        enabled: true,
        // Routes registered before this plugin (/ws, the user's) count too; unknown URLs share one label.
        registeredRoutesOnly: false,
        overrides: { histogram: { registers }, summary: { registers } }
      }
    })
  }

  /** A gauge read when Prometheus scrapes. */
  const gauge = (configuration: GaugeConfiguration<string>): void => registry.registerMetric(new Gauge({ ...configuration, registers: [] }))

  gauge({ name: 'wsc_connections', help: 'WebSocket connections open on this node', collect () { this.set(node.health().connections) } })
  gauge({ name: 'wsc_rooms', help: 'rooms with a member on this node (each a room channel subscription with Redis)', collect () { this.set(node.health().rooms) } })
  const opened = new Counter({ name: 'wsc_connections_opened_total', help: 'WebSocket connections accepted by this node', registers })
  const closed = new Counter({ name: 'wsc_connections_closed_total', help: 'WebSocket connections closed, by close code', labelNames: ['code'], registers })
  const framesIn = new Counter({ name: 'wsc_frames_in_total', help: 'text frames received from clients, by frame type (invalid: did not parse)', labelNames: ['type'], registers })
  const sent = new Counter({ name: 'wsc_messages_sent_total', help: 'sends accepted by this node (server API and client publishes), by target kind', labelNames: ['target'], registers })
  const out = new Counter({ name: 'wsc_messages_out_total', help: 'messages handed to local connections, by target kind', labelNames: ['target'], registers })
  const enqueueToWrite = new Histogram({ name: 'wsc_delivery_latency_seconds', help: 'time from handing a message to a local connection to its socket write', buckets: LATENCY_BUCKETS, registers })
  const publishToWrite = new Histogram({ name: 'wsc_publish_to_write_seconds', help: 'time from the sending node publishing a message (on any node) to its socket write here', buckets: LATENCY_BUCKETS, registers })
  const dropped = new Counter({ name: 'wsc_dropped_total', help: 'frames not delivered or not accepted, by reason', labelNames: ['reason'], registers })
  const refused = new Counter({ name: 'wsc_upgrades_refused_total', help: 'WebSocket upgrades answered with an HTTP error, by status', labelNames: ['status'], registers })
  gauge({ name: 'wsc_draining', help: '1 while the node drains', collect () { this.set(node.draining ? 1 : 0) } })
  gauge({ name: 'wsc_router_up', help: 'the router can reach other nodes (Redis reachable, Pub/Sub probe passing); 1 for the in-memory router while started', collect () { this.set(node.health().router.up ? 1 : 0) } })
  gauge({ name: 'wsc_store_up', help: 'the message store answers (MySQL); 1 for a store that cannot fail on its own (in memory)', collect () { this.set(node.health().store?.up === false ? 0 : 1) } })
  gauge({
    name: 'wsc_router_probe_latency_seconds',
    help: 'round trip of the last Pub/Sub loopback probe; NaN when the router does not probe',
    collect () {
      const latency = node.health().router.probeLatencyMs
      this.set(latency === null ? Number.NaN : latency / 1000)
    }
  })
  let received = 0
  registry.registerMetric(new Counter({
    name: 'wsc_router_received_total',
    help: 'events this node received from other nodes (probes excluded): only what it hosts a target of, plus broadcasts',
    registers: [],
    collect () {
      const now = node.health().router.received
      this.inc(Math.max(0, now - received))
      received = now
    }
  }))
  gauge({
    name: 'wsc_cluster_nodes',
    help: 'live nodes in the cluster registry (this one included)',
    async collect () {
      try {
        this.set((await node.nodes()).length)
      } catch {
        this.set(Number.NaN)
      }
    }
  })

  for (const type of FRAME_KINDS) framesIn.inc({ type }, 0)
  for (const target of TARGET_KINDS) {
    sent.inc({ target }, 0)
    out.inc({ target }, 0)
  }
  for (const reason of DROP_REASONS) dropped.inc({ reason }, 0)

  const observer: WscObserver = {
    connectionOpened: () => opened.inc(),
    connectionClosed: (code) => closed.inc({ code: KNOWN_CLOSE_CODES.has(code) ? String(code) : 'other' }),
    frameIn: (type) => framesIn.inc({ type }),
    messageSent: (target) => sent.inc({ target }),
    messagesOut: (target, count) => out.inc({ target }, count),
    delivered: (enqueueToWriteMs, publishToWriteMs) => {
      enqueueToWrite.observe(enqueueToWriteMs / 1000)
      if (publishToWriteMs !== undefined) publishToWrite.observe(publishToWriteMs / 1000)
    },
    dropped: (reason) => dropped.inc({ reason })
  }
  node.observe(observer)

  fastify.addHook('onResponse', async (request, reply) => {
    if (request.ws && reply.statusCode >= 400 && request.routeOptions.config.wscUpgrade === true) {
      refused.inc({ status: String(reply.statusCode) })
    }
  })

  let port: number | undefined
  fastify.decorate('wscMetrics', {
    registry,
    get port () {
      return port
    }
  })
  if (shared !== undefined) {
    // A registry that outlives this app: the next app in the process registers the same names.
    fastify.addHook('onClose', async () => {
      for (const metric of registry.getMetricsAsArray()) if (metric.name.startsWith('wsc_')) registry.removeSingleMetric(metric.name)
    })
  }
  if (settings.port === undefined) return

  const wanted = settings.port
  const server = Fastify({ loggerInstance: fastify.log.child({ server: 'metrics' }) })
  server.get('/metrics', { logLevel: 'silent' }, async (_request, reply) => {
    const text = await registry.metrics()
    return reply.type(registry.contentType).send(text)
  })
  fastify.addHook('onReady', async () => {
    try {
      await server.listen({ port: wanted, host: settings.host, listenTextResolver: (address) => `metrics at ${address}/metrics` })
    } catch (err) {
      throw new OptionError('metrics.port', `the metrics server cannot listen on ${settings.host}:${wanted}: ${(err as Error).message}`)
    }
    port = (server.server.address() as AddressInfo).port
  })
  fastify.addHook('onClose', async () => {
    await server.close()
  })
}

/** The `metrics` plugin (`wsc-metrics`): decorates `fastify.wscMetrics`. */
export const metrics = fp(registerMetrics, { name: 'wsc-metrics', fastify: '5.x', dependencies: ['wsc-websocket'] })
export default metrics
