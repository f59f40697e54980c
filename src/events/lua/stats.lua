-- Adds events to the daily counters, each event once. On Redis Cluster one call holds the
-- events of one day (its keys share the day's hash tag). See src/events/store.rs.
--
-- KEYS, per event: the day's counters, the event's mark for that day
-- ARGV[1] counters ttl (s)   ARGV[2] mark ttl (s)
-- ARGV, per event from 3: categories (newline-separated), counter, unique counter ('' if none),
--   the stored API key that queued its message ('' if none)
-- Returns, per event: '' when counted (now or before), else why it was refused.
--
-- Increments are summed per field and written once per call (a chunk of 250 events touches a
-- handful of fields), so an event costs one command: its mark. What could refuse (a key that
-- is not a hash, a counter that is not a number) is checked before the first mark is set: a
-- refused event is neither marked nor counted, and the others are.
local stats_ttl, mark_ttl = ARGV[1], ARGV[2]
local NARGS = 4

-- The fields an event adds one to: `counter|` (all mail), `counter|category`, and the same
-- under `counter#key` for the mail of a stored API key.
local function fields_of(cats, counter, unique_counter, key)
  local fields = {}
  for _, name in ipairs({counter, unique_counter}) do
    if name ~= '' then
      local prefixes = {name}
      if key ~= '' then
        prefixes[2] = name .. '#' .. key
      end
      for _, prefix in ipairs(prefixes) do
        fields[#fields + 1] = prefix .. '|'
        for cat in string.gmatch(cats, '[^\n]+') do
          fields[#fields + 1] = prefix .. '|' .. cat
        end
      end
    end
  end
  return fields
end

-- Pass 1: each event's fields, and every field of each day key.
local events, wanted, keys = {}, {}, {}
local n = 0
for i = 3, #ARGV, NARGS do
  local key, mark = KEYS[2 * n + 1], KEYS[2 * n + 2]
  n = n + 1
  local fields = fields_of(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
  events[n] = {key = key, mark = mark, fields = fields}
  if not wanted[key] then
    wanted[key] = {}
    keys[#keys + 1] = key
  end
  for _, field in ipairs(fields) do
    wanted[key][field] = true
  end
end

-- Pass 2: what each day key refuses: the whole key (not a hash) or single fields (not numbers).
local refuse_key, refuse_field = {}, {}
for _, key in ipairs(keys) do
  local kind = redis.call('TYPE', key).ok
  if kind ~= 'none' and kind ~= 'hash' then
    refuse_key[key] = key .. ' is a ' .. kind .. ', not a hash'
  elseif kind == 'hash' then
    local names = {}
    for field in pairs(wanted[key]) do
      names[#names + 1] = field
    end
    local values = redis.call('HMGET', key, unpack(names))
    refuse_field[key] = {}
    for j, value in ipairs(values) do
      if value and not string.match(value, '^%-?%d+$') then
        refuse_field[key][names[j]] = 'the counter ' .. names[j] .. ' of ' .. key .. ' is "' ..
          string.sub(value, 1, 40) .. '", not a number'
      end
    end
  end
end

-- Pass 3: mark and sum; then write the sums.
local out, sums, touched = {}, {}, {}
for j, event in ipairs(events) do
  local why = refuse_key[event.key]
  if not why and refuse_field[event.key] then
    for _, field in ipairs(event.fields) do
      why = why or refuse_field[event.key][field]
    end
  end
  if why then
    out[j] = why
  else
    if redis.call('SET', event.mark, '1', 'NX', 'EX', mark_ttl) then
      local sum = sums[event.key]
      if not sum then
        sum = {}
        sums[event.key] = sum
        touched[#touched + 1] = event.key
      end
      for _, field in ipairs(event.fields) do
        sum[field] = (sum[field] or 0) + 1
      end
    end
    out[j] = ''
  end
end
for _, key in ipairs(touched) do
  for field, by in pairs(sums[key]) do
    redis.call('HINCRBY', key, field, by)
  end
  redis.call('EXPIRE', key, stats_ttl)
end
return out
