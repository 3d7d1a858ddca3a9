/**
 * Every configuration key: the resolved configuration's shape, and the table of keys (file name, env
 * vars, type, bounds, defaults) that docs/configuration.md describes.
 */
import { KIB, MIB, SECOND } from './units.js'

/** The resolved configuration: every key has a value, durations in ms, sizes in bytes. */
export interface WscConfig {
  server: {
    /** This node's id as operators see it (`POD_NAME`, `HOSTNAME`, `NODE_ID`); empty = `<ip>-<port>`. */
    nodeId: string
    /** Address other nodes use to reach this one (`WSC_NODE_IP`, `POD_IP`); empty = detected. */
    nodeIp: string
    /** HTTP port other nodes use (`WSC_NODE_PORT`); 0 = the listen port. */
    nodePort: number
  }
  redis: {
    /** `host:port` or `redis://…` of a standalone Redis (`REDIS_ADDR`); empty = no Redis. */
    addr: string
    password: string
    db: number
    mode: 'auto' | 'standalone' | 'sentinel' | 'cluster'
    /** Sentinel addresses, `host:port` each. */
    sentinels: string[]
    masterName: string
    /** Cluster seed nodes, `host:port` each. */
    clusterNodes: string[]
    /** Command connections (`REDIS_POOL_SIZE`); a user's commands always go to the same one. */
    poolSize: number
    /** Command connections ready before start-up completes (`REDIS_MIN_IDLE_CONNS`); 0 counts as 1, at most `poolSize`. */
    minIdleConns: number
    /** Prefix of every key and channel. */
    prefix: string
  }
  distributed: {
    /** Route through Redis when it is configured; false keeps the node alone even with Redis. */
    enabled: boolean
    nodeDiscoveryInterval: number
    heartbeatInterval: number
  }
  websocket: {
    path: string
    maxConnections: number
    /** 0 = unlimited. */
    maxConnectionsPerUser: number
    messageBufferSize: number
    maxBufferedBytes: number
    /** ms a client gets to answer the server's close before it is dropped. */
    closeTimeout: number
    heartbeatInterval: number
    maxPayload: number
    /** Frames per second a connection may send; 0 = unlimited. */
    rateLimit: number
    rateBurst: number
    rateLimitStrikes: number
    maxRoomsPerConnection: number
  }
  store: {
    /** Messages kept per user for `since` replay and offline delivery in memory and in the Redis window. */
    inboxSize: number
    /** Payload bytes kept per user, in every store. */
    maxInboxBytes: number
    /** Embedded store: users kept (the least recently written is dropped past it). */
    maxUsers: number
    /** Embedded store: payload bytes kept for all users together. */
    maxBytes: number
    /** Redis: a user's keys expire this long (ms) after their last write; MySQL: older messages are deleted; 0 = kept forever. */
    retentionAge: number
    /** MySQL: messages kept per user beyond which the oldest are deleted; 0 = no limit. */
    retentionCount: number
    /** MySQL: pause between two passes of the retention cleanup job (ms). */
    cleanupInterval: number
    /** MySQL: most messages written by one multi-row INSERT (group commit). */
    batchSize: number
  }
  mysql: {
    url: string
    host: string
    port: number
    user: string
    password: string
    database: string
    poolSize: number
  }
  health: {
    /** Serve the liveness and readiness routes and refuse upgrades under pressure. */
    enabled: boolean
    livenessPath: string
    readinessPath: string
    /** Mean event-loop delay (ms) past which the node is under pressure; 0 = off. */
    maxEventLoopDelay: number
    /** Heap used, in percent of V8's heap limit, past which the node is under pressure; 0 = off. */
    maxHeapUsedPercent: number
    /** Resident set size (bytes) past which the node is under pressure; 0 = off. */
    maxRss: number
    sampleInterval: number
    /** A router whose last Pub/Sub probe came back longer ago than this is not ready. */
    maxProbeAge: number
  }
  metrics: {
    /** Keep Prometheus metrics (`app.wscMetrics.registry`). */
    enabled: boolean
    /** Serve them at `/metrics` on a server of their own on this port; undefined = no server (0: an ephemeral port). */
    port: number | undefined
    /** Address of that server. */
    host: string
  }
  drain: {
    /** Closes of live connections are spread over this window. */
    window: number
    /** Time between `/ready` turning 503 and the first close. */
    delay: number
    /** Upper bound of the random `afterMs` in `reconnect` frames. */
    reconnectJitter: number
    /** Budget of a whole shutdown; the example server exits with code 1 past it. */
    timeout: number
  }
}

/** A configuration section, each key optional; durations and sizes also as strings (`5s`, `64KiB`). */
export type ConfigSectionInput<S extends keyof WscConfig> = {
  [K in keyof WscConfig[S]]?: WscConfig[S][K] | (WscConfig[S][K] extends number | undefined ? string : never) | undefined
}

/** What the plugin options may set: any subset of {@link WscConfig}. */
export type WscConfigInput = { [S in keyof WscConfig]?: ConfigSectionInput<S> | undefined }

export type Kind = 'string' | 'int' | 'duration' | 'bytes' | 'bool' | 'list' | 'enum'

/** One configuration key: its file name, env vars, type, bounds and defaults. */
export interface ConfigKey {
  /** snake_case path as written in config.yaml, e.g. `websocket.max_connections`. */
  key: string
  /** Environment variables that set it, tried in order: the first non-empty one wins. */
  env?: readonly string[]
  kind: Kind
  /** The plugins' default; undefined: unset unless given. */
  default: string | number | boolean | string[] | undefined
  /** What `loadConfig` (config.ts) uses instead of `default`: the example app's and its deployments' default. */
  deployDefault?: string | number | boolean
  min?: number
  max?: number
  values?: readonly string[]
  doc: string
}

const DAY = 24 * 3600 * SECOND

/** Every configuration key. docs/configuration.md is this table in prose. */
export const CONFIG_KEYS: readonly ConfigKey[] = [
  { key: 'server.node_id', env: ['POD_NAME', 'HOSTNAME', 'NODE_ID'], kind: 'string', default: '', doc: 'this node\'s id as operators see it (never hashed: node wsc-0 is pod wsc-0); empty: <ip>-<port>' },
  { key: 'server.node_ip', env: ['WSC_NODE_IP', 'POD_IP'], kind: 'string', default: '', doc: 'address of this node for other nodes; empty: the first non-internal IPv4' },
  { key: 'server.node_port', env: ['WSC_NODE_PORT'], kind: 'int', default: 0, min: 0, max: 65535, doc: 'HTTP port of this node for other nodes; 0: the listen port' },
  { key: 'redis.addr', env: ['REDIS_ADDR'], kind: 'string', default: '', doc: 'standalone Redis as host:port or redis:// URL; empty: no Redis (embedded default)' },
  { key: 'redis.password', env: ['REDIS_PASSWORD'], kind: 'string', default: '', doc: 'Redis password' },
  { key: 'redis.db', env: ['REDIS_DB'], kind: 'int', default: 0, min: 0, max: 255, doc: 'Redis database number (standalone and Sentinel)' },
  { key: 'redis.mode', env: ['REDIS_MODE'], kind: 'enum', values: ['auto', 'standalone', 'sentinel', 'cluster'], default: 'auto', doc: 'auto: cluster when cluster_nodes is set, sentinel when sentinels is set, else standalone' },
  { key: 'redis.sentinels', env: ['REDIS_SENTINELS'], kind: 'list', default: [], doc: 'Sentinel addresses, host:port, comma-separated in the env var' },
  { key: 'redis.master_name', env: ['REDIS_MASTER_NAME'], kind: 'string', default: 'mymaster', doc: 'Sentinel master name' },
  { key: 'redis.cluster_nodes', env: ['REDIS_CLUSTER_NODES'], kind: 'list', default: [], doc: 'Redis Cluster seed nodes, host:port, comma-separated in the env var' },
  { key: 'redis.pool_size', env: ['REDIS_POOL_SIZE'], kind: 'int', default: 4, min: 1, max: 256, doc: 'command connections to Redis per node (in Cluster mode: Cluster clients, each with a connection per master); one user\'s commands always use the same one, node-scoped ones the first; Pub/Sub has its own' },
  { key: 'redis.min_idle_conns', env: ['REDIS_MIN_IDLE_CONNS'], kind: 'int', default: 1, min: 0, max: 256, doc: 'command connections that must be ready before start-up completes (0 counts as 1, at most pool_size); the rest connect in the background and a command for one of them waits for it' },
  { key: 'redis.prefix', env: ['WSC_REDIS_PREFIX'], kind: 'string', default: 'wsc:', doc: 'prefix of every Redis key and channel' },
  { key: 'distributed.enabled', env: ['WSC_DISTRIBUTED_ENABLED'], kind: 'bool', default: true, doc: 'route through Redis when Redis is configured' },
  { key: 'distributed.node_discovery_interval', env: ['WSC_NODE_DISCOVERY_INTERVAL'], kind: 'duration', default: 10 * SECOND, min: 100, max: 600 * SECOND, doc: 'how often the live node list is refreshed and dead nodes reaped' },
  { key: 'distributed.heartbeat_interval', env: ['WSC_NODE_HEARTBEAT_INTERVAL'], kind: 'duration', default: 5 * SECOND, min: 100, max: 600 * SECOND, doc: 'how often the node registry entry is rewritten; its TTL is 3x this' },
  { key: 'websocket.path', kind: 'string', default: '/ws', doc: 'WebSocket route' },
  { key: 'websocket.max_connections', env: ['WSC_MAX_CONNECTIONS'], kind: 'int', default: 10000, min: 1, max: 10_000_000, doc: 'connections per node; past it upgrades get 503 with Retry-After' },
  { key: 'websocket.max_connections_per_user', env: ['WSC_MAX_CONNECTIONS_PER_USER'], kind: 'int', default: 0, min: 0, max: 1_000_000, doc: 'connections per user across the cluster; past it the oldest closes with 1008; 0: unlimited' },
  { key: 'websocket.message_buffer_size', env: ['WSC_MESSAGE_BUFFER_SIZE'], kind: 'int', default: 1000, min: 1, max: 1_000_000, doc: 'frames queued to one connection before it is closed with 1013' },
  { key: 'websocket.max_buffered_bytes', env: ['WSC_MAX_BUFFERED_BYTES'], kind: 'bytes', default: 4 * MIB, min: 1 * KIB, max: 1024 * MIB, doc: 'bytes held for one connection (its send buffer and live messages held while it replays) before it is closed with 1013' },
  { key: 'websocket.close_timeout', env: ['WSC_CLOSE_TIMEOUT'], kind: 'duration', default: 2 * SECOND, min: 100, max: 60 * SECOND, doc: 'once the server closes a connection it reads nothing more from it; a client that has not answered the close within this time is dropped (a drain and a shutdown wait this long for the last ones)' },
  { key: 'websocket.heartbeat_interval', env: ['WSC_HEARTBEAT_INTERVAL'], kind: 'duration', default: 30 * SECOND, min: 100, max: 3600 * SECOND, doc: 'WebSocket ping period; two missed pings close the connection' },
  { key: 'websocket.max_payload', env: ['WSC_MAX_PAYLOAD'], kind: 'bytes', default: 64 * KIB, min: 256, max: 64 * MIB, doc: 'largest frame a client may send (close 1009) and largest message the server sends' },
  { key: 'websocket.rate_limit', env: ['WSC_RATE_LIMIT'], kind: 'int', default: 100, min: 0, max: 1_000_000, doc: 'frames per second one connection may send (token bucket); 0: unlimited' },
  { key: 'websocket.rate_burst', env: ['WSC_RATE_BURST'], kind: 'int', default: 200, min: 1, max: 1_000_000, doc: 'bucket size: frames a connection may send at once' },
  { key: 'websocket.rate_limit_strikes', env: ['WSC_RATE_LIMIT_STRIKES'], kind: 'int', default: 50, min: 1, max: 1_000_000, doc: 'RATE_LIMITED refusals within 10 s before the connection is closed with 1008' },
  { key: 'websocket.max_rooms_per_connection', env: ['WSC_MAX_ROOMS_PER_CONNECTION'], kind: 'int', default: 100, min: 1, max: 100_000, doc: 'rooms one connection may be in' },
  { key: 'store.inbox_size', env: ['WSC_INBOX_SIZE'], kind: 'int', default: 1000, min: 1, max: 1_000_000, doc: 'recent messages kept per user for since= replay and offline delivery' },
  { key: 'store.max_inbox_bytes', env: ['WSC_MAX_INBOX_BYTES'], kind: 'bytes', default: 4 * MIB, min: 1 * KIB, max: 1024 * MIB, doc: 'payload bytes kept per user (every store; embedded: payload plus about 200 B per message; MySQL: by the cleanup job); the oldest messages go first' },
  { key: 'store.max_users', env: ['WSC_STORE_MAX_USERS'], kind: 'int', default: 100_000, min: 1, max: 100_000_000, doc: 'embedded store: users whose messages are kept; past it the least recently written user is dropped' },
  { key: 'store.max_bytes', env: ['WSC_STORE_MAX_BYTES'], kind: 'bytes', default: 256 * MIB, min: 1 * MIB, max: 64 * 1024 * MIB, doc: 'embedded store: payload bytes (plus about 200 B per message) kept for all users together; past it the least recently written users are dropped' },
  { key: 'store.retention_age', env: ['WSC_RETENTION_AGE'], kind: 'duration', default: 7 * DAY, min: 0, max: 3650 * DAY, doc: 'Redis: a user\'s keys expire after this long without a write; MySQL: messages older than this are deleted by the cleanup job; 0: kept forever' },
  { key: 'store.retention_count', env: ['WSC_RETENTION_COUNT'], kind: 'int', default: 10_000, min: 0, max: 1_000_000_000, doc: 'MySQL: messages kept per user; the cleanup job deletes older ones; 0: no limit' },
  { key: 'store.cleanup_interval', env: ['WSC_CLEANUP_INTERVAL'], kind: 'duration', default: 60 * SECOND, min: 100, max: 24 * 3600 * SECOND, doc: 'MySQL: pause between two passes of the retention cleanup job' },
  { key: 'store.batch_size', env: ['WSC_STORE_BATCH_SIZE'], kind: 'int', default: 500, min: 1, max: 10_000, doc: 'MySQL: most messages one multi-row INSERT writes (group commit)' },
  { key: 'mysql.url', env: ['MYSQL_URL'], kind: 'string', default: '', doc: 'mysql://user:pass@host:port/db; set it (or mysql.host) to persist user messages' },
  { key: 'mysql.host', env: ['MYSQL_HOST'], kind: 'string', default: '', doc: 'MySQL host when mysql.url is not used' },
  { key: 'mysql.port', env: ['MYSQL_PORT'], kind: 'int', default: 3306, min: 1, max: 65535, doc: 'MySQL port' },
  { key: 'mysql.user', env: ['MYSQL_USER'], kind: 'string', default: 'root', doc: 'MySQL user' },
  { key: 'mysql.password', env: ['MYSQL_PASSWORD'], kind: 'string', default: '', doc: 'MySQL password' },
  { key: 'mysql.database', env: ['MYSQL_DATABASE'], kind: 'string', default: 'wsc', doc: 'MySQL database' },
  { key: 'mysql.pool_size', env: ['MYSQL_POOL_SIZE'], kind: 'int', default: 10, min: 1, max: 1000, doc: 'MySQL connections' },
  { key: 'health.enabled', env: ['WSC_HEALTH_ENABLED'], kind: 'bool', default: true, doc: 'serve the liveness and readiness routes and refuse upgrades under pressure' },
  { key: 'health.liveness_path', kind: 'string', default: '/health', doc: 'liveness route: 200 while the process answers' },
  { key: 'health.readiness_path', kind: 'string', default: '/ready', doc: 'readiness route: 200 only when every dependency is good, the node is not draining and not under pressure' },
  { key: 'health.max_event_loop_delay', env: ['WSC_MAX_EVENT_LOOP_DELAY'], kind: 'duration', default: 1 * SECOND, min: 0, max: 600 * SECOND, doc: 'mean event-loop delay past which the node is under pressure; 0: off' },
  { key: 'health.max_heap_used_percent', env: ['WSC_MAX_HEAP_USED_PERCENT'], kind: 'int', default: 90, min: 0, max: 100, doc: 'heap used, in percent of the V8 heap limit, past which the node is under pressure; 0: off' },
  { key: 'health.max_rss', env: ['WSC_MAX_RSS'], kind: 'bytes', default: 0, min: 0, max: 1024 * 1024 * MIB, doc: 'resident set size past which the node is under pressure (about 90% of the container memory limit); 0: off' },
  { key: 'health.sample_interval', env: ['WSC_HEALTH_SAMPLE_INTERVAL'], kind: 'duration', default: 1 * SECOND, min: 10, max: 60 * SECOND, doc: 'how often event-loop delay, heap and RSS are sampled' },
  { key: 'health.max_probe_age', env: ['WSC_MAX_PROBE_AGE'], kind: 'duration', default: 15 * SECOND, min: 100, max: 3600 * SECOND, doc: 'a router whose last Pub/Sub loopback probe came back longer ago than this is not ready' },
  { key: 'metrics.enabled', env: ['WSC_METRICS_ENABLED'], kind: 'bool', default: true, doc: 'keep Prometheus metrics (app.wscMetrics.registry)' },
  { key: 'metrics.port', env: ['METRICS_PORT'], kind: 'int', default: undefined, deployDefault: 8081, min: 0, max: 65535, doc: 'serve /metrics on a server of its own on this port (never the public port); unset: no server, the app serves the registry itself; 0: an ephemeral port' },
  { key: 'metrics.host', env: ['METRICS_HOST'], kind: 'string', default: 'localhost', deployDefault: '0.0.0.0', doc: 'address the metrics server listens on (0.0.0.0 in a container, so Prometheus can scrape it)' },
  { key: 'drain.window', env: ['WSC_DRAIN_WINDOW'], kind: 'duration', default: 10 * SECOND, min: 0, max: 600 * SECOND, doc: 'on drain, closes (1012) of live connections are spread evenly over this window' },
  { key: 'drain.delay', env: ['WSC_DRAIN_DELAY'], kind: 'duration', default: 0, min: 0, max: 600 * SECOND, doc: 'on drain, time between /ready turning 503 and the first close (use it when there is no preStop sleep)' },
  { key: 'drain.reconnect_jitter', env: ['WSC_RECONNECT_JITTER'], kind: 'duration', default: 5 * SECOND, min: 0, max: 600 * SECOND, doc: 'reconnect frames carry a random afterMs from 0 to this' },
  { key: 'drain.timeout', env: ['WSC_SHUTDOWN_TIMEOUT'], kind: 'duration', default: 25 * SECOND, min: 1 * SECOND, max: 3600 * SECOND, doc: 'budget of a whole shutdown; the example server exits with code 1 past it; keep it below terminationGracePeriodSeconds minus any preStop sleep' }
]
