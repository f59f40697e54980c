-- Puts suppressions from events in place, or lifts a group unsubscribe on a group resubscribe.
-- Both are idempotent (a suppression is only added when absent), so a retried batch needs no
-- marks. See src/events/store.rs.
--
-- KEYS[1] the suppression list (hash)   KEYS[2] its index by time (sorted set)
-- ARGV[1] now (ms); ARGV, per event from 2: email, what to do (a reason, or
--   'lift:group_unsubscribe'), the suppression record (JSON)
-- Returns, per event: '' when done, else why it was refused.
local list, index, now_ms = KEYS[1], KEYS[2], ARGV[1]
local NARGS = 3

local function apply(email, suppress, record)
  for _, pair in ipairs({{list, 'hash'}, {index, 'zset'}}) do
    local kind = redis.call('TYPE', pair[1]).ok
    if kind ~= 'none' and kind ~= pair[2] then
      error(pair[1] .. ' is a ' .. kind .. ', not a ' .. pair[2])
    end
  end
  if suppress == 'lift:group_unsubscribe' then
    local current = redis.call('HGET', list, email)
    if current then
      local ok, stored = pcall(cjson.decode, current)
      if not ok or type(stored) ~= 'table' then
        error('the suppression record of ' .. email .. ' is not JSON')
      end
      if stored.reason == 'group_unsubscribe' then
        redis.call('HDEL', list, email)
        redis.call('ZREM', index, email)
      end
    end
  elseif redis.call('HSETNX', list, email, record) == 1 then
    redis.call('ZADD', index, now_ms, email)
  end
end

local out = {}
for i = 2, #ARGV, NARGS do
  local ok, err = pcall(apply, ARGV[i], ARGV[i + 1], ARGV[i + 2])
  out[#out + 1] = ok and '' or (type(err) == 'table' and err.err or tostring(err))
end
return out
