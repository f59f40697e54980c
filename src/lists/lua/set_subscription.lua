-- Sets one subscriber's subscription to one list (unsubscribe, confirm, subscribe again).
-- KEYS: 1 the subscriber's record bucket, 2 the list's members (this shard), 3 its counts, 4 the
-- subscriber's history.
-- ARGV: 1 subscriber id, 2 new status (u, c or x), 3 now (unix seconds), 4 source, 5 list id,
-- 6 history length kept, 7 (optional) 'r' to answer the subscriber's record as well.
-- Answers the status before ('' when there was no subscription), or 'missing' when no such
-- subscriber exists; with ARGV[7] 'r', {status before, record after}. Setting the status it
-- already has changes nothing (idempotent).
local function answer(status, record)
  if ARGV[7] == 'r' then return {status, record} end
  return status
end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return answer('missing', '') end
local current = redis.call('HGET', KEYS[2], ARGV[1])
local cs = ''
if current then cs = string.sub(current, 1, 1) end
if cs == ARGV[2] then return answer(cs, raw) end
if cs ~= '' then
  redis.call('LPUSH', KEYS[4], ARGV[5] .. '|' .. current)
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[6]) - 1)
  redis.call('HINCRBY', KEYS[3], cs, -1)
end
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[4])
local f = split(raw)
f[8] = with_membership(f[8], ARGV[5], ARGV[2])
local record = join(f)
redis.call('HSET', KEYS[1], ARGV[1], record)
return answer(cs, record)
