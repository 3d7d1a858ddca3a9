/**
 * The Lua of durable delivery on Redis: numbering and appending to a user's inbox, its bounds, the
 * MySQL window cache, replay reads, acks, and the script that numbers, stores and routes a batch of
 * user messages in one call. `scripts.ts` loads them.
 */

/**
 * Local functions every script that adds to a stream shares. A user's keys start at KEYS[k]: seq,
 * inbox, ids, bytes (the acked marker is not among them: it expires `ttl` after the user's last ack).
 *
 * `append` numbers one message and adds it; returns seq, the seq before it in the stream, and whether
 * it was a duplicate (an idempotent id the ids hold: nothing is added, its seq comes back). A missing
 * counter (new user, or Redis restarted empty or flushed) starts from the Redis clock in ms times 256,
 * and past the stream's newest entry: above every seq given before, unless one user received more than
 * 256 messages per ms on average since its counter was last started. `INCR` tells a missing counter (it
 * answers 1; a counter this code started is never that low), so a live one costs no `EXISTS`.
 *
 * `keepBounds` applies the inbox bounds after messages were added (their bytes already counted): the
 * oldest entries go until at most maxlen entries and maxbytes payload bytes are left (the newest always
 * stays); the ids keep only seqs the stream holds. The user's keys expire between ttl and ttl + 1 %
 * after this write (ttl 0: never): they are given ttl + 1 % whenever the inbox has less than ttl left
 * or one of them was just created (`fresh`), so most writes cost one `PTTL` instead of three
 * `PEXPIRE`s, and no key outlives its last write by less than ttl — the ids key only when
 * `idsWritten` (it expires with the write that last used it).
 */
const INBOX_FUNCTIONS = `
local function keepBounds (k, bytes, maxlen, maxbytes, ttl, idsWritten, fresh)
  local len = redis.call('XLEN', KEYS[k + 1])
  fresh = fresh or len == 1
  local trimmed = false
  while len > 1 and (len > maxlen or bytes > maxbytes) do
    local oldest = redis.call('XRANGE', KEYS[k + 1], '-', '+', 'COUNT', 1)[1]
    local fields = oldest[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'd' then bytes = bytes - #fields[i + 1] end
    end
    redis.call('XDEL', KEYS[k + 1], oldest[1])
    len = len - 1
    trimmed = true
  end
  if trimmed then
    redis.call('SET', KEYS[k + 3], math.max(bytes, 0), 'KEEPTTL')
    local first = redis.call('XRANGE', KEYS[k + 1], '-', '+', 'COUNT', 1)
    if #first > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[k + 2], '-inf', '(' .. string.match(first[1][1], '^(%d+)')) end
  end
  if ttl > 0 then
    local keep = ttl + math.ceil(ttl / 100)
    if fresh or redis.call('PTTL', KEYS[k + 1]) < ttl then
      redis.call('PEXPIRE', KEYS[k], keep)
      redis.call('PEXPIRE', KEYS[k + 1], keep)
      redis.call('PEXPIRE', KEYS[k + 3], keep)
    end
    if idsWritten or trimmed then redis.call('PEXPIRE', KEYS[k + 2], keep) end
  end
end

local function append (k, maxlen, maxbytes, ttl, id, from, ts, data, idempotent)
  if idempotent then
    local known = redis.call('ZSCORE', KEYS[k + 2], id)
    if known then return tonumber(known), tonumber(known) - 1, true end
  end
  local seq = redis.call('INCR', KEYS[k])
  local prev = seq - 1
  local fresh = seq == 1
  if fresh then
    local now = redis.call('TIME')
    local start = (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)) * 256
    prev = 0
    local top = redis.call('XREVRANGE', KEYS[k + 1], '+', '-', 'COUNT', 1)
    if #top > 0 then
      prev = tonumber(string.match(top[1][1], '^(%d+)'))
      if prev > start then start = prev end
    end
    seq = start + 1
    redis.call('SET', KEYS[k], string.format('%.0f', seq))
  end
  if from ~= '' then
    redis.call('XADD', KEYS[k + 1], string.format('%.0f', seq) .. '-0', 'i', id, 'ts', ts, 'd', data, 'f', from)
  else
    redis.call('XADD', KEYS[k + 1], string.format('%.0f', seq) .. '-0', 'i', id, 'ts', ts, 'd', data)
  end
  local bytes = redis.call('INCRBY', KEYS[k + 3], #data)
  if idempotent then redis.call('ZADD', KEYS[k + 2], seq, id) end
  keepBounds(k, bytes, maxlen, maxbytes, ttl, idempotent, fresh or bytes == #data)
  return seq, prev, false
end
`

/**
 * KEYS seq, inbox, ids, bytes; ARGV maxlen, maxbytes, ttl, id, from ('' = null), ts, data,
 * idempotent ('1' or '') → { the new seq, the seq before it in the stream } (the first message of a new
 * stream follows none: 0), numbered and appended atomically. An idempotent message whose id the user's
 * ids hold is not appended again: its seq comes back.
 */
export const INBOX_APPEND = INBOX_FUNCTIONS + `
local seq, prev = append(1, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8] == '1')
return { string.format('%.0f', seq), string.format('%.0f', prev) }
`

/**
 * Numbers, stores and routes a batch of user messages in one call (standalone and Sentinel: a script
 * cannot publish to another Cluster slot's channel). Per message, KEYS seq, inbox, ids, bytes,
 * presence of its user; ARGV maxlen, maxbytes, ttl, own node id, node channel prefix, batch channel
 * prefix, origin as JSON, then per message id (of `A-Z a-z 0-9 . _ : -`: the frame quotes it as it
 * is), from ('' = null), ts, data, idempotent ('1' or ''), the frame between seq and data
 * (`,"from":…,"to":…,"data":`), target as JSON, publishedAt. The frame is `encodeMessage`'s.
 *
 * Each message is appended as `wscInboxAppend` does; a failure of one (a key of the wrong type, Redis
 * out of memory) fails that message alone. Then every other node that hosts a recipient gets one
 * `PUBLISH` on its batch channel carrying all of them, in order: a header line
 * `{"kind":"batch","origin":…,"events":[…]}` and one frame per line (frames are JSON: no raw newline).
 * A node that reads no batches (an older version, during a rolling upgrade) does not subscribe that
 * channel: nobody received it, and its messages go one by one on its node channel instead.
 *
 * → per message { seq, prev, status } with status '' (stored and routed), 'd' (a duplicate: neither
 * stored nor routed again) or the error.
 */
export const SEND_TO_USERS = INBOX_FUNCTIONS + `
local maxlen, maxbytes, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local self, nodePrefix, batchPrefix, origin = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local n = #KEYS / 5
local out = {}
local bodies, frames, byNode, nodes = {}, {}, {}, {}
for i = 1, n do
  local k = (i - 1) * 5 + 1
  local a = 8 + (i - 1) * 8
  local ok, seq, prev, duplicate = pcall(append, k, maxlen, maxbytes, ttl, ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4] == '1')
  if not ok then
    out[#out + 1] = '0'
    out[#out + 1] = '0'
    out[#out + 1] = type(seq) == 'table' and tostring(seq.err) or tostring(seq)
  else
    local seqText, prevText = string.format('%.0f', seq), string.format('%.0f', prev)
    out[#out + 1] = seqText
    out[#out + 1] = prevText
    out[#out + 1] = duplicate and 'd' or ''
    if not duplicate then
      local seen = {}
      for _, node in ipairs(redis.call('HVALS', KEYS[k + 4])) do
        if node ~= self and not seen[node] then
          seen[node] = true
          if bodies[i] == nil then
            local prevPart = ''
            if prev ~= seq - 1 then prevPart = ',"prevSeq":' .. prevText end
            bodies[i] = '"target":' .. ARGV[a + 6] .. ',"seq":' .. seqText .. prevPart .. ',"publishedAt":' .. ARGV[a + 7] .. '}'
            frames[i] = '{"type":"message","id":"' .. ARGV[a] .. '","seq":' .. seqText .. ARGV[a + 5] .. ARGV[a + 3] .. ',"ts":' .. ARGV[a + 2] .. '}'
          end
          local list = byNode[node]
          if list == nil then
            list = {}
            byNode[node] = list
            nodes[#nodes + 1] = node
          end
          list[#list + 1] = i
        end
      end
    end
  end
end
for _, node in ipairs(nodes) do
  local list = byNode[node]
  local parts = { '{"kind":"batch","origin":', origin, ',"events":[' }
  for j, i in ipairs(list) do
    if j > 1 then parts[#parts + 1] = ',' end
    parts[#parts + 1] = '{"kind":"deliver",'
    parts[#parts + 1] = bodies[i]
  end
  parts[#parts + 1] = ']}'
  for _, i in ipairs(list) do
    parts[#parts + 1] = '\\n'
    parts[#parts + 1] = frames[i]
  end
  if redis.call('PUBLISH', batchPrefix .. node, table.concat(parts)) == 0 then
    for _, i in ipairs(list) do
      redis.call('PUBLISH', nodePrefix .. node, '{"kind":"deliver","origin":' .. origin .. ',' .. bodies[i] .. '\\n' .. frames[i])
    end
  end
end
return out
`

/**
 * KEYS seq, inbox, ids, bytes; ARGV maxlen, maxbytes, ttl, then (seq, id, from, ts, data) per
 * message, ascending and contiguous. Caches messages MySQL committed. The stream always holds a
 * contiguous run of seqs ending at the seq key: a run that does not follow on restarts the stream; a
 * run already behind is left to MySQL.
 */
export const INBOX_CACHE = INBOX_FUNCTIONS + `
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
local bytes = 0
for i = 0, n - 1 do
  local at = 4 + i * 5
  if tonumber(ARGV[at]) > floor then
    local fields = { 'i', ARGV[at + 1], 'ts', ARGV[at + 3], 'd', ARGV[at + 4] }
    if ARGV[at + 2] ~= '' then fields[#fields + 1] = 'f'; fields[#fields + 1] = ARGV[at + 2] end
    redis.call('XADD', KEYS[2], ARGV[at] .. '-0', unpack(fields))
    bytes = redis.call('INCRBY', KEYS[4], #ARGV[at + 4])
  end
end
redis.call('SET', KEYS[1], last)
keepBounds(1, bytes, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), true, true)
return n
`

/** KEYS seq, inbox → { latest seq or '', id of the oldest entry held or '' }; creates nothing. */
export const INBOX_HEAD = `
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
return { redis.call('GET', KEYS[1]) or '', #oldest > 0 and oldest[1][1] or '' }
`

/** KEYS seq, inbox; ARGV first id, count → { latest seq or '', entries from the first id on }. */
export const INBOX_WINDOW = `
local latest = redis.call('GET', KEYS[1])
if not latest then return { '' } end
return { latest, redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2]) }
`

/** KEYS acked, seq; ARGV seq, ttl: raises the acked seq, never past the latest seq nor backwards; expires `ttl` after the last ack. */
export const INBOX_ACK = `
local latest = tonumber(redis.call('GET', KEYS[2]) or '0')
local acked = tonumber(redis.call('GET', KEYS[1]) or '0')
local seq = math.min(tonumber(ARGV[1]), latest)
if seq > acked then
  redis.call('SET', KEYS[1], string.format('%.0f', seq))
  if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
end
return 0
`
