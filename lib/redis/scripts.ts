/**
 * Every Lua script fastify-wsc runs on Redis, and the one way they are loaded: ioredis `defineCommand`
 * on each command connection (EVALSHA, with EVAL on NOSCRIPT), run through {@link runScript}.
 */
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
  wscReapPresence: { numberOfKeys: 1, lua: REAP_PRESENCE },
  wscClaimDeadNode: { numberOfKeys: 1, lua: CLAIM_DEAD_NODE },
  wscReleaseDeadNode: { numberOfKeys: 1, lua: RELEASE_DEAD_NODE },
  wscRouteToUser: { numberOfKeys: 1, lua: ROUTE_TO_USER },
  wscInboxAppend: { numberOfKeys: 4, lua: INBOX_APPEND },
  wscSendToUsers: { numberOfKeys: undefined, lua: SEND_TO_USERS },
  wscInboxCache: { numberOfKeys: 4, lua: INBOX_CACHE },
  wscInboxHead: { numberOfKeys: 2, lua: INBOX_HEAD },
  wscInboxWindow: { numberOfKeys: 2, lua: INBOX_WINDOW },
  wscInboxAck: { numberOfKeys: 2, lua: INBOX_ACK }
} as const

export type ScriptName = keyof typeof SCRIPTS

type ScriptCaller = (...args: Array<string | number>) => Promise<unknown>

/** Defines every script on a client (once; a client shared with another pool keeps its definitions). */
export function defineScripts (client: RedisClient): void {
  const commands = client as unknown as Record<string, unknown>
  for (const [name, script] of Object.entries(SCRIPTS)) {
    if (typeof commands[name] !== 'function') client.defineCommand(name, script)
  }
}

/** Runs a script defined by {@link defineScripts}: its keys first (counted when the script takes any number), then its arguments. */
export function runScript (client: RedisClient, name: ScriptName, keys: readonly string[], args: ReadonlyArray<string | number> = []): Promise<unknown> {
  const call = (client as unknown as Record<ScriptName, ScriptCaller>)[name]
  return SCRIPTS[name].numberOfKeys === undefined ? call.call(client, keys.length, ...keys, ...args) : call.call(client, ...keys, ...args)
}
