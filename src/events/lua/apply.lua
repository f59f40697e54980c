-- Applies a chunk of parsed SendGrid events atomically: dedupe, timeline (the newest ARGV[6]
-- kept), delivery status, stats, suppressions. Keys are built from the prefix (ARGV[1]); see src/events/store.rs for
-- the layout and the argument order.
local prefix = ARGV[1]
local dedupe_ttl = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])
local stats_ttl = tonumber(ARGV[4])
local now_ms = ARGV[5]
local timeline_cap = tonumber(ARGV[6])
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

-- A status field holds `rank:status`; anything else was not written by mailroom.
local function rank_of(current)
  if not current then
    return 0
  end
  local rank = tonumber(string.match(current, '^(%d+):'))
  if not rank then
    error('the delivery status "' .. string.sub(current, 1, 40) .. '" is not rank:status')
  end
  return rank
end

local function raise(key, field, rank, status)
  if rank_of(redis.call('HGET', key, field)) < rank then
    redis.call('HSET', key, field, rank .. ':' .. status)
  end
end

-- One event's effects. What can refuse (a key of another type, a stored status or suppression
-- mailroom cannot read) is checked before the first write, so a refusal leaves nothing half
-- done; the caller runs this in pcall (a backstop for what is not checked, such as a daily
-- counter edited into a non-number) and marks the event seen only after it returned.
local function apply(message, email, status, rank, day, cats, counter, unique_counter,
                     unique_key, suppress, suppression, line)
  local timeline = prefix .. ':timeline:' .. message
  local delivery = prefix .. ':delivery:' .. message
  local list = prefix .. ':suppressions'
  local function expect(key, wanted)
    local kind = redis.call('TYPE', key).ok
    if kind ~= 'none' and kind ~= wanted then
      error(key .. ' is a ' .. kind .. ', not a ' .. wanted)
    end
  end
  if counter ~= '' then
    expect(prefix .. ':stats:' .. day, 'hash')
  end
  if message ~= '' then
    expect(timeline, 'list')
    if status ~= '' then
      expect(delivery, 'hash')
      rank_of(redis.call('HGET', delivery, email))
      rank_of(redis.call('HGET', delivery, ''))
    end
  end
  local lifted = false
  if suppress ~= '' then
    expect(list, 'hash')
  end
  if suppress == 'lift:group_unsubscribe' then
    local current = redis.call('HGET', list, email)
    if current then
      local ok, record = pcall(cjson.decode, current)
      if not ok or type(record) ~= 'table' then
        error('the suppression record of ' .. email .. ' is not JSON')
      end
      lifted = record.reason == 'group_unsubscribe'
    end
  end

  if message ~= '' then
    redis.call('RPUSH', timeline, line)
    redis.call('LTRIM', timeline, -timeline_cap, -1)
    redis.call('EXPIRE', timeline, keep)
    if status ~= '' then
      raise(delivery, email, rank, status)
      raise(delivery, '', rank, status)
      redis.call('EXPIRE', delivery, keep)
    end
  end
  if counter ~= '' then
    count(day, cats, counter)
    if unique_counter ~= '' and redis.call('SET', prefix .. ':evt:uniq:' .. unique_key, '1', 'NX', 'EX', stats_ttl) then
      count(day, cats, unique_counter)
    end
  end
  if lifted then
    redis.call('HDEL', list, email)
    redis.call('ZREM', list .. ':index', email)
  elseif suppress ~= '' and suppress ~= 'lift:group_unsubscribe' then
    if redis.call('HSETNX', list, email, suppression) == 1 then
      redis.call('ZADD', list .. ':index', now_ms, email)
    end
  end
end

local refused = {}
local n = 0
for i = 7, #ARGV, FIELDS do
  n = n + 1
  local event_id, composite, message, email, status, rank, day, cats, counter, unique_counter,
        unique_key, suppress, suppression, line = unpack(ARGV, i, i + FIELDS - 1)
  local seen_id = prefix .. ':evt:seen:' .. event_id
  local seen_key = prefix .. ':evt:seen:k:' .. composite
  if (event_id ~= '' and redis.call('EXISTS', seen_id) == 1)
      or redis.call('EXISTS', seen_key) == 1 then
    duplicates = duplicates + 1
  else
    local ok, err = pcall(apply, message, email, status, tonumber(rank), day, cats, counter,
      unique_counter, unique_key, suppress, suppression, line)
    if ok then
      -- Seen only once its effects are written: a refused event is applied when retried.
      if event_id ~= '' then
        redis.call('SET', seen_id, '1', 'EX', dedupe_ttl)
      end
      redis.call('SET', seen_key, '1', 'EX', dedupe_ttl)
      fresh = fresh + 1
    else
      local why = type(err) == 'table' and err.err or tostring(err)
      refused[#refused + 1] = tostring(n)
      refused[#refused + 1] = why
    end
  end
end
return {fresh, duplicates, refused}
