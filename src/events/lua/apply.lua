-- Applies a chunk of parsed SendGrid events atomically: dedupe, timeline, delivery status,
-- stats, suppressions. Keys are built from the prefix (ARGV[1]); see src/events/store.rs for
-- the layout and the argument order.
local prefix = ARGV[1]
local dedupe_ttl = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])
local stats_ttl = tonumber(ARGV[4])
local now_ms = ARGV[5]
local FIELDS = 14
local fresh, duplicates = 0, 0

local function count(day, cats, counter)
  local key = prefix .. ':stats:' .. day
  redis.call('HINCRBY', key, counter .. '|', 1)
  for cat in string.gmatch(cats, '[^\n]+') do
    redis.call('HINCRBY', key, counter .. '|' .. cat, 1)
  end
  redis.call('EXPIRE', key, stats_ttl)
end

local function raise(key, field, rank, status)
  local current = redis.call('HGET', key, field)
  if not current or tonumber(string.match(current, '^(%d+)')) < rank then
    redis.call('HSET', key, field, rank .. ':' .. status)
  end
end

for i = 6, #ARGV, FIELDS do
  local event_id, composite, message, email, status, rank, day, cats, counter, unique_counter,
        unique_key, suppress, suppression, line = unpack(ARGV, i, i + FIELDS - 1)
  local seen = false
  if event_id ~= '' and not redis.call('SET', prefix .. ':evt:seen:' .. event_id, '1', 'NX', 'EX', dedupe_ttl) then
    seen = true
  end
  if not redis.call('SET', prefix .. ':evt:seen:k:' .. composite, '1', 'NX', 'EX', dedupe_ttl) then
    seen = true
  end
  if seen then
    duplicates = duplicates + 1
  else
    fresh = fresh + 1
    if message ~= '' then
      local timeline = prefix .. ':timeline:' .. message
      redis.call('RPUSH', timeline, line)
      redis.call('EXPIRE', timeline, keep)
      if status ~= '' then
        local delivery = prefix .. ':delivery:' .. message
        raise(delivery, email, tonumber(rank), status)
        raise(delivery, '', tonumber(rank), status)
        redis.call('EXPIRE', delivery, keep)
      end
    end
    if counter ~= '' then
      count(day, cats, counter)
      if unique_counter ~= '' and redis.call('SET', prefix .. ':evt:uniq:' .. unique_key, '1', 'NX', 'EX', stats_ttl) then
        count(day, cats, unique_counter)
      end
    end
    local list = prefix .. ':suppressions'
    if suppress == 'lift:group_unsubscribe' then
      local current = redis.call('HGET', list, email)
      if current and cjson.decode(current).reason == 'group_unsubscribe' then
        redis.call('HDEL', list, email)
        redis.call('ZREM', list .. ':index', email)
      end
    elseif suppress ~= '' then
      if redis.call('HSETNX', list, email, suppression) == 1 then
        redis.call('ZADD', list .. ':index', now_ms, email)
      end
    end
  end
end
return {fresh, duplicates}
