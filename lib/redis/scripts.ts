/**
 * Every Lua script fastify-wsc runs on Redis, and the one way they are run: {@link runScript}, which
 * sends a script's source (`EVAL`) the first time on each socket and its SHA1 (`EVALSHA`) after, as ioredis
 * `defineCommand` does, and sends the source again on `NOSCRIPT`.
 */
import { createHash } from 'node:crypto'
import { Cluster, Command, Redis } from 'ioredis'
import type { RedisClient } from './command-pool.js'
import { INBOX_ACK, INBOX_APPEND, INBOX_CACHE, INBOX_HEAD, INBOX_WINDOW, SEND_TO_USERS } from './inbox-scripts.js'

/** Removes a user's presence entries that point at one node. KEYS presence hash; ARGV nodeId → entries removed. */
const REAP_PRESENCE = `
local fields = redis.call('HGETALL', KEYS[1])
local removed = 0
for i = 1, #fields, 2 do
  if fields[i + 1] == ARGV[1] then
    redis.call('HDEL', KEYS[1], fields[i])
    removed = removed + 1
  end
end
return removed`

/**
 * Claims a dead node for reaping: moves its index score from the stale value to a lease (now), so one
 * survivor reaps it, and another resumes if that one dies before it finished (the lease goes stale too).
 * KEYS node index; ARGV nodeId, stale score, lease → 1 when claimed.
 */
const CLAIM_DEAD_NODE = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
return 0`

/** Drops a reaped node from the index unless it came back meanwhile (its score is no longer our lease). KEYS node index; ARGV nodeId, lease. */
const RELEASE_DEAD_NODE = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0`

/**
 * KEYS presence; ARGV own node id, node channel prefix, message → nodes published to. Standalone and
 * Sentinel only (a script cannot SPUBLISH to another slot): publishes the routed event to the channel of
 * every other node that hosts the user, in one round trip.
 */
const ROUTE_TO_USER = `
local seen = {}
local published = 0
for _, nodeId in ipairs(redis.call('HVALS', KEYS[1])) do
  if nodeId ~= ARGV[1] and not seen[nodeId] then
    seen[nodeId] = true
    redis.call('PUBLISH', ARGV[2] .. nodeId, ARGV[3])
    published = published + 1
  end
end
return published`

const SCRIPTS = {
  wscReapPresence: REAP_PRESENCE,
  wscClaimDeadNode: CLAIM_DEAD_NODE,
  wscReleaseDeadNode: RELEASE_DEAD_NODE,
  wscRouteToUser: ROUTE_TO_USER,
  wscInboxAppend: INBOX_APPEND,
  wscSendToUsers: SEND_TO_USERS,
  wscInboxCache: INBOX_CACHE,
  wscInboxHead: INBOX_HEAD,
  wscInboxWindow: INBOX_WINDOW,
  wscInboxAck: INBOX_ACK
} as const

export type ScriptName = keyof typeof SCRIPTS

interface LoadedScript {
  name: ScriptName
  lua: string
  sha: string
  /** Sockets that have run the script's source since they connected: the script is in that Redis's cache. */
  loadedOn: WeakSet<object>
}

const LOADED = new Map<ScriptName, LoadedScript>(Object.entries(SCRIPTS).map(([name, lua]) => [name as ScriptName, {
  name: name as ScriptName, lua, sha: createHash('sha1').update(lua).digest('hex'), loadedOn: new WeakSet()
}]))

/**
 * One script call. Which socket it goes to is known only when ioredis writes it (a Cluster picks the
 * node then), so that is where it becomes `EVAL` or `EVALSHA`, as in ioredis's `defineCommand`. Unlike
 * that one, it puts no closure on `reject` per call: with that closure a call's command, its arguments
 * and every send waiting on it survived young collections (a node sampled 4.7–5.3 MB of survivors during
 * a run at 2,000 messages/s, 1.0–2.6 MB without it: docs/performance.md, step 9).
 */
class ScriptCommand extends Command {
  readonly #script: LoadedScript
  /** The socket the command was last written to: a `NOSCRIPT` from there means its Redis lost the script. */
  socket: object | undefined

  constructor (script: LoadedScript, keys: readonly string[], args: ReadonlyArray<string | number>) {
    // No keyPrefix: the clients are ours, or an app's that adoptRedisClient checked has none.
    super('evalsha', [script.sha, keys.length, ...keys, ...args], { replyEncoding: 'utf8' })
    this.#script = script
  }

  override toWritable (socket: object): string | Buffer {
    this.socket = socket
    if (!this.#script.loadedOn.has(socket)) {
      this.#script.loadedOn.add(socket)
      this.name = 'eval'
      this.args[0] = this.#script.lua
    } else if (this.name === 'eval') {
      this.name = 'evalsha'
      this.args[0] = this.#script.sha
    }
    return super.toWritable(socket)
  }
}

type ScriptCaller = (...args: Array<string | number>) => Promise<unknown>

/**
 * Runs a script with its keys and arguments. A client from another copy of ioredis (an app's own) may
 * not take this copy's commands: the script is defined on it with its own `defineCommand` instead, once.
 */
export function runScript (client: RedisClient, name: ScriptName, keys: readonly string[], args: ReadonlyArray<string | number> = []): Promise<unknown> {
  const script = LOADED.get(name) as LoadedScript
  if (!(client instanceof Redis || client instanceof Cluster)) return runDefined(client, script, keys, args)
  const command = new ScriptCommand(script, keys, args)
  return (client.sendCommand(command) as Promise<unknown>).catch((err: unknown) => {
    if (!(err instanceof Error) || !err.message.includes('NOSCRIPT') || command.socket === undefined) throw err
    // Its Redis lost its scripts (SCRIPT FLUSH) while the socket stayed up: the next write to that socket sends the source.
    script.loadedOn.delete(command.socket)
    return client.sendCommand(new ScriptCommand(script, keys, args))
  })
}

function runDefined (client: RedisClient, script: LoadedScript, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
  const commands = client as unknown as Record<string, unknown>
  if (typeof commands[script.name] !== 'function') client.defineCommand(script.name, { lua: script.lua })
  return (commands[script.name] as ScriptCaller).call(client, keys.length, ...keys, ...args)
}
