import { ENTRY_OVERHEAD_BYTES } from './publish-prepare.js';
import { KEY_SEGMENTS } from './redis-keys.js';

/**
 * The Lua scripts of the Redis broker (layout in redis-keys.ts). Each runs atomically, so a
 * publish is all-or-nothing and a history read sees one consistent top of the sequence.
 *
 * Completeness proof. Every stream entry carries `p`, the previous seq published on the same
 * channel; the meta hash keeps `l` (last seq published) and `r` (largest seq ever removed). Entries
 * leave a stream only from the front (the publish script pops the oldest entry, for the count and
 * byte bounds) or all at once (expiry), so for a cursor c:
 *   - l <= c: nothing was published on the channel after c → complete, no messages;
 *   - otherwise the channel is complete iff r <= c and the first entry after c exists and has
 *     p <= c (its predecessor on the channel is not after the cursor, so nothing in between
 *     was lost); entries after it are contiguous because trimming never makes holes.
 * `r` is maintained by the publish script: every pop sets it to the popped entry's seq (the
 * largest removed so far, as pops go oldest first); a stream found missing while `l` is set was
 * expired, so r = l. An emptied stream still exists (XDEL keeps the key), so a resume past it
 * reads as trimmed, a missing one as expired.
 */

/**
 * Shared prologue. KEYS[1..6] = seq, epoch, replid, epochs, top, lost (RedisKeys.epochKeys);
 * ARGV[1] = an epoch candidate.
 *
 * A new epoch starts (docs/delivery.md, "Why an id never names two messages"):
 *   - when <p>:seq is missing: Redis lost its data (or never had any); the lineage goes with it,
 *     so every older cursor is foreign and resets;
 *   - when <p>:replid is not this server's `master_replid`: the writes of the current epoch were
 *     made on another primary (this one was promoted, or restarted). Redis gives a server a new
 *     random replication id whenever it becomes a primary, and only a primary takes writes, so
 *     the ids of one epoch all come from one server in one term, in one INCR order. The old epoch
 *     ends at this server's top (what survived here); it joins the lineage (<p>:epochs), so a
 *     cursor of it still resumes: nothing is reset that history can prove.
 * Everything up to the top that survived is released (<p>:top), as a promotion makes it durable.
 */
const ENSURE_EPOCH = `
local MAX_LINEAGE = 16
local function ensure_epoch()
  local rid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)') or ''
  local epoch = redis.call('GET', KEYS[2])
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('SET', KEYS[1], 0)
    redis.call('SET', KEYS[5], 0)
    redis.call('DEL', KEYS[4], KEYS[6])
    epoch = false
  end
  if not epoch then
    epoch = ARGV[1]
    redis.call('SET', KEYS[2], epoch)
    redis.call('SET', KEYS[3], rid)
  elseif redis.call('GET', KEYS[3]) ~= rid then
    local top = redis.call('GET', KEYS[1])
    local ordinal = redis.call('HINCRBY', KEYS[4], '#', 1)
    redis.call('HSET', KEYS[4], epoch, top .. ':' .. ordinal)
    if redis.call('HLEN', KEYS[4]) > MAX_LINEAGE + 1 then
      local all = redis.call('HGETALL', KEYS[4])
      local oldest, oldest_n = nil, nil
      for i = 1, #all, 2 do
        local n = tonumber(string.match(all[i + 1], ':(%d+)$') or '')
        if all[i] ~= '#' and n and (oldest_n == nil or n < oldest_n) then oldest, oldest_n = all[i], n end
      end
      if oldest then redis.call('HDEL', KEYS[4], oldest) end
    end
    epoch = ARGV[1]
    redis.call('SET', KEYS[2], epoch)
    redis.call('SET', KEYS[3], rid)
    redis.call('SET', KEYS[5], top)
  end
  return epoch
end

-- True when e is the current epoch or one of its lineage (its history entries still count).
local function known_epoch(e, epoch)
  return e == epoch or (e and redis.call('HEXISTS', KEYS[4], e) == 1)
end
`;

/**
 * A batch of publishes, each one PublishInput (see docs/security.md, "Publishing", for the
 * bounds): the publishes one process has ready in one event-loop turn for one Redis (or one
 * partition of a Redis Cluster) run in one call, one after the other, in the given order. A batch
 * shares the per-call work (the epoch check, TIME, the total bound, the released top) and one
 * reply; each publish keeps its own idempotency record, fence check and answer.
 * KEYS: the six epoch keys (ENSURE_EPOCH), history LRU zset, history bytes hash, history total,
 *       then per publish: its idempotency record, then per channel: history stream, meta hash.
 * ARGV: 1 epoch candidate, 2 history size, 3 history ttl s, 4 meta ttl s, 5 history bytes per
 *       channel, 6 history bytes in total, 7 key prefix (`<p>:`), 8 hold ('1': do not release —
 *       the caller WAITs for replicas and then runs RELEASE_LUA; '0': PUBLISH now and move
 *       <p>:top), 9 sharded ('1': SPUBLISH `<seq> <prev> <ms> <frame>`, where prev is the
 *       channel's previous seq, for a Redis Cluster partition whose edges subscribe per channel;
 *       '0': PUBLISH `<seq> <ms> <frame>`), 10 the number of publishes; then per publish: record
 *       ttl s, attempt token, frame body (everything after the id line), the number of channels,
 *       the name of each channel.
 * Returns per publish two elements: 0, "<id> <id> …" when applied; 1, <the first answer> for a
 * repeated idempotency key; 2, '' when that attempt was fenced by FENCE_LUA (nothing of it is
 * applied). A duplicate or a fenced publish does not stop the ones after it.
 * The publish time is Redis TIME (one clock for every publisher replica), in ms.
 *
 * Byte bounds. Each entry is charged #frame + ENTRY_OVERHEAD bytes, kept per channel in the meta
 * hash (`b`) and in <p>:hbytes, and in total in <p>:htotal. Entries are removed only by popping
 * the oldest entry of a stream (XRANGE COUNT 1 + XDEL), which sets `r` to exactly its seq:
 *   - per channel, after the XADD, while the stream is over history-size entries or the per-
 *     channel bytes;
 *   - in total, from the channel at the head of <p>:hlru (scored by last seq: the least recently
 *     published channel) while the total is over its bound. A head channel whose stream is gone
 *     (expired) just gives its bytes back (so expired history stops counting within a few
 *     publishes).
 * Work per call is bounded: the caller bounds the fan-out bytes of each publish (preparePublish)
 * and the publishes per call (redis-publish-batch.ts), and removals stop after `budget` pops or
 * after freeing twice the bytes this call added plus 1 MiB — a store over a bound (say after an
 * operator lowered it) converges over the following publishes instead of in one long script.
 * These keys are outside KEYS for evicted channels: fine on a standalone Redis or a replicated
 * primary, not on a Redis Cluster.
 */
export const PUBLISH_LUA = `${ENSURE_EPOCH}
local size = tonumber(ARGV[2])
local ttl = ARGV[3]
local meta_ttl = ARGV[4]
local max_channel = tonumber(ARGV[5])
local max_total = tonumber(ARGV[6])
local prefix = ARGV[7]
local hold = ARGV[8] == '1'
local sharded = ARGV[9] == '1'
local count = tonumber(ARGV[10])
local lru, sizes, total_key = KEYS[7], KEYS[8], KEYS[9]
local OVERHEAD = ${ENTRY_OVERHEAD_BYTES}
local budget = 256 + 4 * ((#KEYS - 9 - count) / 2)
local added = 0
local freed = 0
local epoch, now, total = nil, nil, nil

-- Pops the oldest entry of stream h: its seq (a string) and its charged bytes, or nil.
local function pop_oldest(h)
  if budget <= 0 or freed > 2 * added + 1048576 then return nil end
  local first = redis.call('XRANGE', h, '-', '+', 'COUNT', 1)[1]
  if not first then return nil end
  redis.call('XDEL', h, first[1])
  budget = budget - 1
  local bytes = #first[2][2] + OVERHEAD
  freed = freed + bytes
  return string.match(first[1], '^(%d+)'), bytes
end

-- Applies one publish of body on the n channels whose keys start after KEYS[k] and whose names
-- start after ARGV[a]; its ids joined by spaces.
local function apply(body, n, k, a)
  local ids = {}
  for i = 1, n do
    local h = KEYS[k + 2 * i - 1]
    local m = KEYS[k + 2 * i]
    local name = ARGV[a + i]
    local seq = string.format('%d', redis.call('INCR', KEYS[1]))
    local id = epoch .. '-' .. seq
    local frame = 'id: ' .. id .. '\\n' .. body
    local meta = redis.call('HMGET', m, 'e', 'l', 'r', 'b')
    local prev, removed, bytes = '0', '0', 0
    if known_epoch(meta[1], epoch) then
      prev = meta[2]
      removed = meta[3]
      bytes = tonumber(meta[4] or '0')
    else
      -- no bookkeeping for this epoch: whatever the stream holds belongs to a lost epoch
      redis.call('DEL', h)
    end
    local len = redis.call('XLEN', h)
    if len == 0 then
      if prev ~= '0' then removed = prev end
      bytes = 0
    end
    -- the total counted this channel as <p>:hbytes says; from now on it counts 'bytes'
    total = total - tonumber(redis.call('HGET', sizes, name) or '0') + bytes
    redis.call('XADD', h, seq .. '-0', 'f', frame, 't', now, 'p', prev)
    local charge = #frame + OVERHEAD
    added = added + charge
    bytes = bytes + charge
    total = total + charge
    len = len + 1
    while len > 0 and (len > size or bytes > max_channel) do
      local s, b = pop_oldest(h)
      if not s then break end
      removed, bytes, total, len = s, bytes - b, total - b, len - 1
    end
    redis.call('EXPIRE', h, ttl)
    redis.call('HSET', m, 'e', epoch, 'l', seq, 'r', removed, 'b', bytes)
    redis.call('EXPIRE', m, meta_ttl)
    if len > 0 then
      redis.call('HSET', sizes, name, bytes)
      redis.call('ZADD', lru, seq, name)
    else
      redis.call('HDEL', sizes, name)
      redis.call('ZREM', lru, name)
    end
    if hold then
      -- published by RELEASE_LUA once the replicas have it
    elseif sharded then
      redis.call('SPUBLISH', prefix .. '${KEY_SEGMENTS.pubsub}' .. name, seq .. ' ' .. prev .. ' ' .. now .. ' ' .. frame)
    else
      redis.call('PUBLISH', prefix .. '${KEY_SEGMENTS.pubsub}' .. name, seq .. ' ' .. now .. ' ' .. frame)
    end
    ids[i] = id
  end
  return table.concat(ids, ' ')
end

local out = {}
local k, a = 9, 10
for p = 1, count do
  local record = KEYS[k + 1]
  local record_ttl = tonumber(ARGV[a + 1])
  local attempt = ARGV[a + 2]
  local body = ARGV[a + 3]
  local n = tonumber(ARGV[a + 4])
  local status, answer = 0, nil
  if record_ttl > 0 then
    local seen = redis.call('GET', record)
    if seen then
      if string.sub(seen, 1, 1) ~= '!' then
        status, answer = 1, seen
      elseif seen == '!' .. attempt then
        status, answer = 2, ''
      end
    end
  end
  if status == 0 then
    if not epoch then
      epoch = ensure_epoch()
      local t = redis.call('TIME')
      now = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
      total = tonumber(redis.call('GET', total_key) or '0')
    end
    answer = apply(body, n, k + 1, a + 4)
    if record_ttl > 0 then redis.call('SET', record, answer, 'EX', record_ttl) end
  end
  out[2 * p - 1] = status
  out[2 * p] = answer
  k = k + 1 + 2 * n
  a = a + 4 + n
end

if epoch then
  -- The total bound, and expired history giving its bytes back, from the least recently published.
  while budget > 0 do
    local head = redis.call('ZRANGE', lru, 0, 0)[1]
    if not head then break end
    local h = prefix .. '${KEY_SEGMENTS.history}' .. head
    local m = prefix .. '${KEY_SEGMENTS.meta}' .. head
    local counted = tonumber(redis.call('HGET', sizes, head) or '0')
    if redis.call('EXISTS', h) == 0 then
      total = total - counted
      redis.call('HDEL', sizes, head)
      redis.call('ZREM', lru, head)
      budget = budget - 1
    elseif total > max_total then
      local s, b = pop_oldest(h)
      if not s then
        if budget <= 0 or freed > 2 * added + 1048576 then break end
        -- an empty stream still counted: nothing left to free here
        total = total - counted
        counted = 0
      else
        total = total - b
        counted = counted - b
        if redis.call('EXISTS', m) == 1 then
          redis.call('HSET', m, 'r', s, 'b', math.max(counted, 0))
        end
      end
      if counted <= 0 or redis.call('XLEN', h) == 0 then
        redis.call('HDEL', sizes, head)
        redis.call('ZREM', lru, head)
      else
        redis.call('HSET', sizes, head, counted)
      end
    else
      break
    end
  end
  redis.call('SET', total_key, math.max(total, 0))
  if not hold then redis.call('SET', KEYS[5], redis.call('GET', KEYS[1])) end
end
return out
`;

/**
 * Settles an attempt whose answer was lost (a command timeout, a dropped connection): run on a
 * connection that is up, it returns the record's answer when the attempt (or the first publish
 * with that key) was applied, or writes the fence `!<attempt>` and returns '' — from then on
 * that attempt's PUBLISH_LUA, should it still arrive, returns {2} and applies nothing. So the
 * caller answers 200 exactly when the publish was applied.
 * KEYS: the idempotency record. ARGV: attempt token, fence ttl s.
 */
export const FENCE_LUA = `
local seen = redis.call('GET', KEYS[1])
if seen and string.sub(seen, 1, 1) ~= '!' then return seen end
redis.call('SET', KEYS[1], '!' .. ARGV[1], 'EX', ARGV[2])
return ''
`;

/**
 * One page of history after a cursor, or just the position.
 * KEYS: the six epoch keys (ENSURE_EPOCH), then per channel: history stream, meta hash.
 * ARGV: 1 epoch candidate, 2 cursor epoch ('' = position only), 3 cursor seq, 4 page messages at
 *       most (0 = no limit), 5 page frame bytes at most (0 = no limit; one larger message still
 *       makes a page of its own), then the name of each channel.
 * Returns {epoch, top, status, codes, page, more, split}: top is the released top (<p>:top);
 * status 'ok' | 'epoch' | 'future'; per channel a code (0 complete, 1 trimmed, 2 expired,
 * 3 lost by a failover); page = the first entries after the cursor of the complete channels
 * merged in seq order, each {channel index (1-based), entry id, frame, publish ms}, all <= top
 * (read in the same atomic step); more = 1 when the limits cut the page; split = the end seq of
 * the cursor's epoch when it is an earlier epoch of the lineage, else -1.
 *
 * A cursor of an earlier epoch E (ended at seq S here) is read as the position min(seq, S): the
 * entries up to S are E's own, the ones after S belong to later epochs, which the cursor has not
 * seen. A channel is then also reset ('lost', code 3) when a failover lost one of its messages
 * that the cursor has not seen: one of E's after the cursor, or any of a later earlier epoch
 * (<p>:lost, written by LOST_LUA).
 * The merge reads each stream in small XRANGE … COUNT steps sized to the byte budget left, so
 * neither the script's memory nor the reply grows with the history, only with the page.
 */
export const HISTORY_LUA = `${ENSURE_EPOCH}
local epoch = ensure_epoch()
local top = redis.call('GET', KEYS[5])
if ARGV[2] == '' then return {epoch, top, 'ok', {}, {}, 0, -1} end
local cepoch = ARGV[2]
local cursor = tonumber(ARGV[3])
local split = -1
local later = {}
if cepoch ~= epoch then
  local v = redis.call('HGET', KEYS[4], cepoch)
  if not v then return {epoch, top, 'epoch', {}, {}, 0, -1} end
  local s, k = string.match(v, '^(%d+):(%d+)$')
  split = tonumber(s)
  local all = redis.call('HGETALL', KEYS[4])
  for i = 1, #all, 2 do
    local n = tonumber(string.match(all[i + 1], ':(%d+)$') or '')
    if all[i] ~= '#' and n and n > tonumber(k) then later[#later + 1] = all[i] end
  end
end
local seen = cursor
if split >= 0 and cursor > split then cursor = split end
if cursor > tonumber(top) then return {epoch, top, 'future', {}, {}, 0, -1} end
local max_n = tonumber(ARGV[4])
local max_b = tonumber(ARGV[5])
local top_n = tonumber(top)
local start = string.format('%d-0', cursor + 1)
local n = (#KEYS - 6) / 2
-- A message of this channel lost by a failover that the cursor has not seen.
local function lost(name)
  if split < 0 then return false end
  local x = redis.call('HGET', KEYS[6], cepoch .. ' ' .. name)
  if x and tonumber(x) > seen then return true end
  for _, e in ipairs(later) do
    if redis.call('HEXISTS', KEYS[6], e .. ' ' .. name) == 1 then return true end
  end
  return false
end
local codes, bufs, pos, done = {}, {}, {}, {}
for i = 1, n do
  local h = KEYS[5 + 2 * i]
  local meta = redis.call('HMGET', KEYS[6 + 2 * i], 'e', 'l', 'r')
  local code = 0
  bufs[i], pos[i], done[i] = {}, 1, true
  if lost(ARGV[5 + i]) then
    code = 3
  elseif known_epoch(meta[1], epoch) and tonumber(meta[2]) > cursor then
    local first = {}
    if tonumber(meta[3]) <= cursor then first = redis.call('XRANGE', h, start, '+', 'COUNT', 1) end
    if #first == 0 or tonumber(first[1][2][6]) > cursor then
      if redis.call('EXISTS', h) == 1 then code = 1 else code = 2 end
    elseif tonumber(string.match(first[1][1], '^%d+')) <= top_n then
      bufs[i], done[i] = first, false
    end
  end
  codes[i] = code
end
local page, count, bytes, more = {}, 0, 0, 0
local function head(i)
  local buf = bufs[i]
  if pos[i] > #buf then
    if done[i] then return nil end
    local last = buf[#buf]
    local want = 64
    if max_b > 0 then want = math.floor((max_b - bytes) / (n * math.max(#last[2][2], 1))) end
    if max_n > 0 then want = math.min(want, max_n - count + 1) end
    want = math.max(1, math.min(64, want))
    buf = redis.call('XRANGE', KEYS[5 + 2 * i], '(' .. last[1], top .. '-0', 'COUNT', want)
    bufs[i], pos[i] = buf, 1
    if #buf < want then done[i] = true end
    if #buf == 0 then return nil end
  end
  return buf[pos[i]]
end
while true do
  local best, best_seq = nil, nil
  for i = 1, n do
    local e = head(i)
    if e then
      local s = tonumber(string.match(e[1], '^%d+'))
      if best == nil or s < best_seq then best, best_seq = i, s end
    end
  end
  if best == nil then break end
  local e = bufs[best][pos[best]]
  local size = #e[2][2]
  if count > 0 and ((max_n > 0 and count >= max_n) or (max_b > 0 and bytes + size > max_b)) then
    more = 1
    break
  end
  page[#page + 1] = {best, e[1], e[2][2], e[2][4]}
  count = count + 1
  bytes = bytes + size
  pos[best] = pos[best] + 1
end
return {epoch, top, 'ok', codes, page, more, split}
`;

/**
 * Releases publishes made with hold = '1' once their WAIT succeeded (--redis-wait-replicas):
 * publishes each frame from its history entry (as PUBLISH_LUA would have: PUBLISH, or SPUBLISH
 * with the channel's previous seq on a Redis Cluster partition) and moves <p>:top, so subscribers
 * — live, and history reads — only ever see what replicas acknowledged. Nothing happens when the
 * epoch has changed since (a promotion released everything that survived).
 * KEYS: the six epoch keys, then per message: its history stream.
 * ARGV: 1 the epoch of the ids, 2 key prefix (`<p>:`), 3 sharded ('1': SPUBLISH), then per
 * message: seq, channel name.
 */
export const RELEASE_LUA = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local top = tonumber(redis.call('GET', KEYS[5]) or '0')
local released = 0
for i = 1, (#ARGV - 3) / 2 do
  local seq = ARGV[2 + 2 * i]
  local channel = ARGV[2] .. '${KEY_SEGMENTS.pubsub}' .. ARGV[3 + 2 * i]
  -- the entry's fields: f (frame), t (publish time), p (the channel's previous seq)
  local e = redis.call('XRANGE', KEYS[6 + i], seq .. '-0', seq .. '-0')[1]
  if e then
    if ARGV[3] == '1' then
      redis.call('SPUBLISH', channel, seq .. ' ' .. e[2][6] .. ' ' .. e[2][4] .. ' ' .. e[2][2])
    else
      redis.call('PUBLISH', channel, seq .. ' ' .. e[2][4] .. ' ' .. e[2][2])
    end
    released = released + 1
  end
  if tonumber(seq) > top then top = tonumber(seq) end
end
redis.call('SET', KEYS[5], top)
return released
`;

/**
 * The mark before a WAIT on a Redis Cluster partition (--redis-wait-replicas, redis-wait.ts): one
 * replicated write that changes nothing (<p>:top set to itself), made only when this server
 * holds the message `<epoch>-<seq>`: <p>:replid is this server's `master_replid` (the current
 * epoch was begun here, in this primary term: ENSURE_EPOCH) and the epoch is the current one (all
 * its ids were handed out here), or one of its lineage with seq at or below its end (it survived
 * here). A WAIT after the mark on the same connection covers the message.
 * KEYS: the six epoch keys. ARGV: 1 epoch, 2 seq.
 * Returns 1 (marked), or 0 (this server may lack the message; nothing written).
 */
export const WAIT_MARK_LUA = `
local rid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)') or ''
if redis.call('GET', KEYS[3]) ~= rid then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  local v = redis.call('HGET', KEYS[4], ARGV[1])
  if not v or tonumber(string.match(v, '^(%d+)')) < tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[5], redis.call('GET', KEYS[5]) or '0')
return 1
`;

/**
 * Records messages that a failover lost, as reported by an edge that delivered them or a
 * publisher that was answered for them (each keeps its recent ids: docs/delivery.md). Only
 * messages of an earlier epoch after its end here are recorded; each new (epoch, channel, seq)
 * maximum is published on <p>:lost-reports so every edge resets the channel where it did not
 * deliver that message.
 * KEYS: the six epoch keys. ARGV: 1 the epoch of the messages, 2 ttl s of <p>:lost, 3 the report
 * pub/sub channel, 4 '1' to SPUBLISH the report (a Redis Cluster partition) else PUBLISH, then per
 * message: seq, channel name.
 * Returns the number of entries that were new.
 */
export const LOST_LUA = `
local v = redis.call('HGET', KEYS[4], ARGV[1])
if not v then return 0 end
local split = tonumber(string.match(v, '^(%d+)'))
local fresh = {}
for i = 1, (#ARGV - 4) / 2 do
  local seq = tonumber(ARGV[3 + 2 * i])
  local name = ARGV[4 + 2 * i]
  if seq and seq > split then
    local field = ARGV[1] .. ' ' .. name
    local x = tonumber(redis.call('HGET', KEYS[6], field) or '0')
    if seq > x then
      redis.call('HSET', KEYS[6], field, seq)
      fresh[#fresh + 1] = {seq, name}
    end
  end
end
if #fresh > 0 then
  redis.call('EXPIRE', KEYS[6], ARGV[2])
  local cmd = 'PUBLISH'
  if ARGV[4] == '1' then cmd = 'SPUBLISH' end
  redis.call(cmd, ARGV[3], cjson.encode({e = ARGV[1], l = fresh}))
end
return #fresh
`;
