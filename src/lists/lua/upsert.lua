-- Creates or updates subscribers of one shard and subscribes them to lists, for a batch of rows.
-- KEYS: 1 address index, 2 number sequence, then per list: members, counts.
-- ARGV: 1 shard, 2 shard count, 3 list ids (comma-separated, may be empty), 4 wanted status
-- (u or c), 5 now (unix seconds), 6 source, 7 update existing records (1/0), 8 history key
-- prefix (this shard's tag), 9 history length kept, 10 record bucket key prefix, 11 ids per
-- bucket, then 3 per row: case key; address, name, locale and attributes JSON joined by the
-- unit separator (a new record's first fields as they are); mask (4 characters: name, locale,
-- attributes given as 1/0; status e, b or - for unchanged).
-- Record bucket keys are built here (a new subscriber's id is only known here); they share this
-- shard's hash tag, so they live in the slot of the declared keys.
-- Answers per row `id:S:M…` (S: n new, u updated, = unchanged; M per list: n new, c
-- confirmed from unconfirmed, = unchanged, x refused because unsubscribed).
local shard, shards = tonumber(ARGV[1]), tonumber(ARGV[2])
local lists = {}
for l in string.gmatch(ARGV[3], '[^,]+') do lists[#lists + 1] = l end
local want, now, source, update = ARGV[4], ARGV[5], ARGV[6], ARGV[7] == '1'
local hprefix, hmax = ARGV[8], tonumber(ARGV[9])
local rprefix, span = ARGV[10], tonumber(ARGV[11])
local first, per_row = 12, 3
local n = (#ARGV - first + 1) / per_row
if n < 1 then return {} end

local keys = {}
for r = 1, n do keys[r] = ARGV[first + (r - 1) * per_row] end
local found = redis.call('HMGET', KEYS[1], unpack(keys))

local fresh, pending = 0, {}
for r = 1, n do
  if not found[r] and not pending[keys[r]] then
    fresh = fresh + 1
    pending[keys[r]] = true
  end
end
local number = 0
if fresh > 0 then number = redis.call('INCRBY', KEYS[2], fresh) - fresh end

-- A record is kept either as `heads[id]` and `hstatus[id]` (a new one: its given fields and
-- status) or as `recs[id]` (an existing one, split; false when indexed without a record), with
-- its memberships in `ms[id]`; `bucket[id]` is its bucket's number.
local rid, id_of, heads, hstatus, recs, ms, bucket = {}, {}, {}, {}, {}, {}, {}
for r = 1, n do
  local k = keys[r]
  local id = found[r] or id_of[k]
  if not id then
    number = number + 1
    id = tostring(number * shards + shard)
    heads[id] = false
    bucket[id] = math.floor(number * shards / span)
  elseif recs[id] == nil and heads[id] == nil then
    bucket[id] = math.floor(tonumber(id) / span)
    local raw = redis.call('HGET', rprefix .. bucket[id], id)
    if raw then
      recs[id] = split(raw)
      ms[id] = recs[id][8]
    else
      recs[id] = false
    end
  end
  id_of[k] = id
  rid[r] = id
end

-- Subscriptions can only exist for subscribers that did: a batch of new ones reads none.
local known = {}
for r = 1, n do
  if heads[rid[r]] == nil then known[#known + 1] = rid[r] end
end
local members = {}
for li = 1, #lists do
  local state = {}
  if #known > 0 then
    local got = redis.call('HMGET', KEYS[1 + li * 2], unpack(known))
    for i = 1, #known do
      if state[known[i]] == nil then state[known[i]] = got[i] or '' end
    end
  end
  members[li] = state
end

local dirty, order, idx_writes = {}, {}, {}
local mem_writes, deltas = {}, {}
for li = 1, #lists do
  mem_writes[li] = {}
  deltas[li] = {u = 0, c = 0, x = 0}
end
local out = {}
for r = 1, n do
  local base = first + (r - 1) * per_row
  local given, mask = ARGV[base + 1], ARGV[base + 2]
  local id = rid[r]
  local s_out = '='
  if heads[id] == false then
    local status = string.sub(mask, 4, 4)
    if status == '-' then status = 'e' end
    heads[id], hstatus[id] = given, status
    ms[id] = ''
    idx_writes[#idx_writes + 1] = keys[r]
    idx_writes[#idx_writes + 1] = id
    s_out = 'n'
  elseif update and (heads[id] or recs[id]) then
    -- The same address again in this batch (a new record: split it) or an existing one.
    local f = recs[id]
    if not f then
      f = split(heads[id] .. US .. hstatus[id] .. US .. now .. US .. now)
      heads[id] = nil
      recs[id] = f
    end
    local g = split(given)
    local changed = false
    for i = 1, 3 do
      if string.sub(mask, i, i) == '1' and f[i + 1] ~= g[i + 1] then
        f[i + 1] = g[i + 1]
        changed = true
      end
    end
    local status = string.sub(mask, 4, 4)
    if status ~= '-' and f[5] ~= status then
      f[5] = status
      changed = true
    end
    if f[1] ~= g[1] then
      f[1] = g[1]
      changed = true
    end
    if changed then
      f[7] = now
      s_out = 'u'
    end
    if changed and not dirty[id] then
      dirty[id] = true
      order[#order + 1] = id
    end
  end
  if s_out == 'n' then
    dirty[id] = true
    order[#order + 1] = id
  end
  local m_out = ''
  for li = 1, #lists do
    local current = members[li][id] or ''
    local cs = string.sub(current, 1, 1)
    local ns, o = nil, '='
    if cs == '' then
      ns, o = want, 'n'
    elseif cs == 'x' then
      o = 'x'
    elseif cs == 'u' and want == 'c' then
      ns, o = 'c', 'c'
    end
    if ns then
      if cs ~= '' then
        local h = hprefix .. id
        redis.call('LPUSH', h, lists[li] .. '|' .. current)
        redis.call('LTRIM', h, 0, hmax - 1)
        deltas[li][cs] = deltas[li][cs] - 1
      end
      deltas[li][ns] = deltas[li][ns] + 1
      local value = ns .. '|' .. now .. '|' .. source
      members[li][id] = value
      local w = mem_writes[li]
      w[#w + 1] = id
      w[#w + 1] = value
      if ms[id] then
        ms[id] = with_membership(ms[id], lists[li], ns)
        if not dirty[id] then
          dirty[id] = true
          order[#order + 1] = id
        end
      end
    end
    m_out = m_out .. o
  end
  out[r] = id .. ':' .. s_out .. ':' .. m_out
end

-- One HSET per bucket: new subscribers have consecutive numbers, so a batch fills few buckets.
local writes, bucket_order = {}, {}
for _, id in ipairs(order) do
  local b = bucket[id]
  local w = writes[b]
  if not w then
    w = {}
    writes[b] = w
    bucket_order[#bucket_order + 1] = b
  end
  w[#w + 1] = id
  if heads[id] then
    w[#w + 1] = heads[id] .. US .. hstatus[id] .. US .. now .. US .. now .. US .. ms[id]
  else
    recs[id][8] = ms[id]
    w[#w + 1] = join(recs[id])
  end
end
for _, b in ipairs(bucket_order) do redis.call('HSET', rprefix .. b, unpack(writes[b])) end
if #idx_writes > 0 then redis.call('HSET', KEYS[1], unpack(idx_writes)) end
for li = 1, #lists do
  if #mem_writes[li] > 0 then redis.call('HSET', KEYS[1 + li * 2], unpack(mem_writes[li])) end
  for s, d in pairs(deltas[li]) do
    if d ~= 0 then redis.call('HINCRBY', KEYS[2 + li * 2], s, d) end
  end
end
return out
