-- Adds events to the daily counters, each event once. On Redis Cluster one call holds the
-- events of one day (its keys share the day's hash tag). See src/events/store.rs.
--
-- KEYS, per event: the day's counters, the event's mark for that day
-- ARGV[1] counters ttl (s)   ARGV[2] mark ttl (s)
-- ARGV, per event from 3: categories (newline-separated), counter, unique counter ('' if none)
-- Returns, per event: '' when counted (now or before), else why it was refused.
local stats_ttl, mark_ttl = ARGV[1], ARGV[2]
local NARGS = 3

local function count(key, cats, counter)
  redis.call('HINCRBY', key, counter .. '|', 1)
  for cat in string.gmatch(cats, '[^\n]+') do
    redis.call('HINCRBY', key, counter .. '|' .. cat, 1)
  end
end

local function apply(key, cats, counter, unique_counter)
  local kind = redis.call('TYPE', key).ok
  if kind ~= 'none' and kind ~= 'hash' then
    error(key .. ' is a ' .. kind .. ', not a hash')
  end
  count(key, cats, counter)
  if unique_counter ~= '' then
    count(key, cats, unique_counter)
  end
  redis.call('EXPIRE', key, stats_ttl)
end

local out = {}
local n = 0
for i = 3, #ARGV, NARGS do
  local key, mark = KEYS[2 * n + 1], KEYS[2 * n + 2]
  n = n + 1
  if redis.call('EXISTS', mark) == 1 then
    out[#out + 1] = ''
  else
    local ok, err = pcall(apply, key, ARGV[i], ARGV[i + 1], ARGV[i + 2])
    if ok then
      redis.call('SET', mark, '1', 'EX', mark_ttl)
      out[#out + 1] = ''
    else
      out[#out + 1] = type(err) == 'table' and err.err or tostring(err)
    end
  end
end
return out
