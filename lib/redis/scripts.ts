/**
 * Every Lua script fastify-wsc runs on Redis, and the one way they are loaded: ioredis `defineCommand`
 * on each command connection (EVALSHA, with EVAL on NOSCRIPT), run through {@link runScript}.
 */
import type { RedisClient } from './command-pool.js'

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

/**
 * A missing counter (new user, or Redis restarted empty or flushed) starts from the Redis clock in ms
 * times 256, and past the stream's newest entry: above every seq given before, unless one user
 * received more than 256 messages per ms on average since its counter was last started. KEYS seq, inbox.
 */
const START_COUNTER = `
local started = nil
if redis.call('EXISTS', KEYS[1]) == 0 then
  local now = redis.call('TIME')
  local start = (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)) * 256
  started = 0
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if #top > 0 then
    started = tonumber(string.match(top[1][1], '^(%d+)'))
    if started > start then start = started end
  end
  redis.call('SET', KEYS[1], string.format('%.0f', start))
end
`

/**
 * The bounds of one user's inbox, after messages were added (their payload bytes already counted in
 * the bytes key): the oldest entries go until at most ARGV maxlen entries and ARGV maxbytes payload
 * bytes are left (the newest always stays); the ids keep only seqs the stream holds; every key of the
 * user expires ARGV ttl ms after this write (0: never). KEYS seq, inbox, ids, bytes, acked.
 */
const KEEP_BOUNDS = `
local len = redis.call('XLEN', KEYS[2])
local bytes = tonumber(redis.call('GET', KEYS[4]) or '0')
local trimmed = false
while len > 1 and (len > tonumber(ARGV[1]) or bytes > tonumber(ARGV[2])) do
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
  local fields = oldest[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'd' then bytes = bytes - #fields[i + 1] end
  end
  redis.call('XDEL', KEYS[2], oldest[1])
  len = len - 1
  trimmed = true
end
if trimmed then
  redis.call('SET', KEYS[4], math.max(bytes, 0))
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if #first > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. string.match(first[1][1], '^(%d+)')) end
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
`

/**
 * KEYS seq, inbox, ids, bytes, acked; ARGV maxlen, maxbytes, ttl, id, from ('' = null), ts, data,
 * idempotent ('1' or '') → { the new seq, the seq before it in the stream } (a new counter follows the
 * newest entry its stream still holds, or none: 0), numbered and appended atomically. An idempotent
 * message whose id the user's ids hold is not appended again: its seq comes back.
 */
const INBOX_APPEND = `
if ARGV[8] == '1' then
  local known = redis.call('ZSCORE', KEYS[3], ARGV[4])
  if known then return { string.format('%.0f', tonumber(known)), string.format('%.0f', tonumber(known) - 1) } end
end
` + START_COUNTER + `
local seq = string.format('%.0f', redis.call('INCR', KEYS[1]))
local prev = started or (tonumber(seq) - 1)
local fields = { 'i', ARGV[4], 'ts', ARGV[6], 'd', ARGV[7] }
if ARGV[5] ~= '' then fields[#fields + 1] = 'f'; fields[#fields + 1] = ARGV[5] end
redis.call('XADD', KEYS[2], seq .. '-0', unpack(fields))
redis.call('INCRBY', KEYS[4], #ARGV[7])
if ARGV[8] == '1' then redis.call('ZADD', KEYS[3], seq, ARGV[4]) end
` + KEEP_BOUNDS + `
return { seq, string.format('%.0f', prev) }
`

/**
 * KEYS seq, inbox, ids, bytes, acked; ARGV maxlen, maxbytes, ttl, then (seq, id, from, ts, data) per
 * message, ascending and contiguous. Caches messages MySQL committed. The stream always holds a
 * contiguous run of seqs ending at the seq key: a run that does not follow on restarts the stream; a
 * run already behind is left to MySQL.
 */
const INBOX_CACHE = `
local latest = redis.call('GET', KEYS[1])
local n = (#ARGV - 3) / 5
local first = tonumber(ARGV[4])
local last = ARGV[4 + (n - 1) * 5]
local floor = 0
if latest then floor = tonumber(latest) end
if not latest or first > floor + 1 then
  redis.call('DEL', KEYS[2], KEYS[4])
  floor = 0
elseif tonumber(last) <= floor then
  return 0
end
for i = 0, n - 1 do
  local at = 4 + i * 5
  if tonumber(ARGV[at]) > floor then
    local fields = { 'i', ARGV[at + 1], 'ts', ARGV[at + 3], 'd', ARGV[at + 4] }
    if ARGV[at + 2] ~= '' then fields[#fields + 1] = 'f'; fields[#fields + 1] = ARGV[at + 2] end
    redis.call('XADD', KEYS[2], ARGV[at] .. '-0', unpack(fields))
    redis.call('INCRBY', KEYS[4], #ARGV[at + 4])
  end
end
redis.call('SET', KEYS[1], last)
` + KEEP_BOUNDS + `
return n
`

/** KEYS seq, inbox → { latest seq or '', id of the oldest entry held or '' }; creates nothing. */
const INBOX_HEAD = `
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
return { redis.call('GET', KEYS[1]) or '', #oldest > 0 and oldest[1][1] or '' }
`

/** KEYS seq, inbox; ARGV first id, count → { latest seq or '', entries from the first id on }. */
const INBOX_WINDOW = `
local latest = redis.call('GET', KEYS[1])
if not latest then return { '' } end
return { latest, redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2]) }
`

/** KEYS acked, seq; ARGV seq, ttl: raises the acked seq, never past the latest seq nor backwards; expires with the user's other keys. */
const INBOX_ACK = `
local latest = tonumber(redis.call('GET', KEYS[2]) or '0')
local acked = tonumber(redis.call('GET', KEYS[1]) or '0')
local seq = math.min(tonumber(ARGV[1]), latest)
if seq > acked then
  redis.call('SET', KEYS[1], string.format('%.0f', seq))
  if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
end
return 0
`

const SCRIPTS = {
  wscReapPresence: { numberOfKeys: 1, lua: REAP_PRESENCE },
  wscClaimDeadNode: { numberOfKeys: 1, lua: CLAIM_DEAD_NODE },
  wscReleaseDeadNode: { numberOfKeys: 1, lua: RELEASE_DEAD_NODE },
  wscRouteToUser: { numberOfKeys: 1, lua: ROUTE_TO_USER },
  wscInboxAppend: { numberOfKeys: 5, lua: INBOX_APPEND },
  wscInboxCache: { numberOfKeys: 5, lua: INBOX_CACHE },
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

/** Runs a script defined by {@link defineScripts}: its keys first, then its arguments. */
export function runScript (client: RedisClient, name: ScriptName, keys: readonly string[], args: ReadonlyArray<string | number> = []): Promise<unknown> {
  return ((client as unknown as Record<ScriptName, ScriptCaller>)[name]).call(client, ...keys, ...args)
}
