/**
 * The two Lua scripts of the Redis broker (layout in redis-keys.ts). Each runs atomically, so a
 * publish is all-or-nothing and a history read sees one consistent top of the sequence.
 *
 * Completeness proof. Every stream entry carries `p`, the previous seq published on the same
 * channel; the meta hash keeps `l` (last seq published) and `r` (largest seq ever removed). Entries
 * leave a stream only from the front (MAXLEN trimming) or all at once (expiry), so for a cursor c:
 *   - l <= c: nothing was published on the channel after c → complete, no messages;
 *   - otherwise the channel is complete iff r <= c and the first entry after c exists and has
 *     p <= c (its predecessor on the channel is not after the cursor, so nothing in between
 *     was lost); entries after it are contiguous because trimming never makes holes.
 * `r` is maintained by the publish script: MAXLEN ~ trimming does not report what it removed (and
 * on Redis 7.0 does not raise the stream's max-deleted-entry-id), so after a trim the script reads
 * the first kept entry and takes its `p`; a stream found missing while `l` is set was expired,
 * so r = l.
 */

/**
 * Shared prologue. KEYS[1] = seq, KEYS[2] = epoch, ARGV[1] = an epoch candidate. A missing seq
 * key means Redis lost its data (or never had any): a new epoch starts, so every older cursor is
 * recognised as foreign instead of silently matching reused sequence numbers.
 */
const ENSURE_EPOCH = `
local function ensure_epoch()
  local epoch = redis.call('GET', KEYS[2])
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('SET', KEYS[1], 0)
    epoch = false
  end
  if not epoch then
    epoch = ARGV[1]
    redis.call('SET', KEYS[2], epoch)
  end
  return epoch
end
`;

/**
 * One PublishInput.
 * KEYS: seq, epoch, idempotency record, then per channel: history stream, meta hash.
 * ARGV: epoch candidate, history size, history ttl s, meta ttl s, idempotency ttl s (0 = no key),
 *       frame body (everything after the id line), then the pub/sub channel of each channel.
 * Returns {0, "<id> <id> …"} or, for a repeated idempotency key, {1, <the first answer>}.
 * The publish time is Redis TIME (one clock for every publisher replica), in ms.
 */
export const PUBLISH_LUA = `${ENSURE_EPOCH}
local idem_ttl = tonumber(ARGV[5])
if idem_ttl > 0 then
  local seen = redis.call('GET', KEYS[3])
  if seen then return {1, seen} end
end
local epoch = ensure_epoch()
local t = redis.call('TIME')
local now = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
local size = ARGV[2]
local ttl = ARGV[3]
local meta_ttl = ARGV[4]
local body = ARGV[6]
local ids = {}
for i = 1, (#KEYS - 3) / 2 do
  local h = KEYS[2 + 2 * i]
  local m = KEYS[3 + 2 * i]
  local seq = string.format('%d', redis.call('INCR', KEYS[1]))
  local id = epoch .. '-' .. seq
  local frame = 'id: ' .. id .. '\\n' .. body
  local meta = redis.call('HMGET', m, 'e', 'l', 'r')
  local prev, removed = '0', '0'
  if meta[1] == epoch then
    prev = meta[2]
    removed = meta[3]
  else
    -- no bookkeeping for this epoch: whatever the stream holds belongs to a lost epoch
    redis.call('DEL', h)
  end
  local len = redis.call('XLEN', h)
  if len == 0 and prev ~= '0' then removed = prev end
  redis.call('XADD', h, 'MAXLEN', '~', size, seq .. '-0', 'f', frame, 't', now, 'p', prev)
  if redis.call('XLEN', h) <= len then
    local first = redis.call('XRANGE', h, '-', '+', 'COUNT', 1)[1]
    removed = first[2][6]
  end
  redis.call('EXPIRE', h, ttl)
  redis.call('HSET', m, 'e', epoch, 'l', seq, 'r', removed)
  redis.call('EXPIRE', m, meta_ttl)
  redis.call('PUBLISH', ARGV[6 + i], seq .. ' ' .. now .. ' ' .. frame)
  ids[i] = id
end
local answer = table.concat(ids, ' ')
if idem_ttl > 0 then redis.call('SET', KEYS[3], answer, 'EX', idem_ttl) end
return {0, answer}
`;

/**
 * One page of history after a cursor, or just the position.
 * KEYS: seq, epoch, then per channel: history stream, meta hash.
 * ARGV: epoch candidate, cursor epoch ('' = position only), cursor seq, page messages at most
 *       (0 = no limit), page frame bytes at most (0 = no limit; one larger message still makes a
 *       page of its own).
 * Returns {epoch, top, status, codes, page, more}: status 'ok' | 'epoch' | 'future'; per channel
 * a code (0 complete, 1 trimmed, 2 expired); page = the first entries after the cursor of the
 * complete channels merged in seq order, each {channel index (1-based), entry id, frame, publish
 * ms}, all <= top (read in the same atomic step); more = 1 when the limits cut the page.
 * The merge reads each stream in small XRANGE … COUNT steps sized to the byte budget left, so
 * neither the script's memory nor the reply grows with the history, only with the page.
 */
export const HISTORY_LUA = `${ENSURE_EPOCH}
local epoch = ensure_epoch()
local top = redis.call('GET', KEYS[1])
if ARGV[2] == '' then return {epoch, top, 'ok', {}, {}, 0} end
if ARGV[2] ~= epoch then return {epoch, top, 'epoch', {}, {}, 0} end
local cursor = tonumber(ARGV[3])
if cursor > tonumber(top) then return {epoch, top, 'future', {}, {}, 0} end
local max_n = tonumber(ARGV[4])
local max_b = tonumber(ARGV[5])
local start = string.format('%d-0', cursor + 1)
local n = (#KEYS - 2) / 2
local codes, bufs, pos, done = {}, {}, {}, {}
for i = 1, n do
  local h = KEYS[1 + 2 * i]
  local meta = redis.call('HMGET', KEYS[2 + 2 * i], 'e', 'l', 'r')
  local code = 0
  bufs[i], pos[i], done[i] = {}, 1, true
  if meta[1] == epoch and tonumber(meta[2]) > cursor then
    local first = {}
    if tonumber(meta[3]) <= cursor then first = redis.call('XRANGE', h, start, '+', 'COUNT', 1) end
    if #first == 0 or tonumber(first[1][2][6]) > cursor then
      if redis.call('EXISTS', h) == 1 then code = 1 else code = 2 end
    else
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
    buf = redis.call('XRANGE', KEYS[1 + 2 * i], '(' .. last[1], '+', 'COUNT', want)
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
return {epoch, top, 'ok', codes, page, more}
`;
