-- Creates or updates subscribers of one shard and subscribes them to lists, for a batch of rows.
-- KEYS: 1 records, 2 address index, 3 number sequence, then per list: members, counts.
-- ARGV: 1 shard, 2 shard count, 3 list ids (comma-separated, may be empty), 4 wanted status
-- (u or c), 5 now (unix seconds), 6 source, 7 update existing records (1/0), 8 history key
-- prefix (this shard's tag), 9 history length kept, then 6 per row: case key, address, name,
-- locale, attributes JSON, mask (4 characters: name, locale, attributes given as 1/0; status
-- e, b or - for unchanged).
-- Records are the fields address, name, locale, attributes, status, created, updated joined by
-- the unit separator (\31), which the caller keeps out of every field, so nothing here parses
-- JSON. Answers per row `id:S:M…` (S: n new, u updated, = unchanged; M per list: n new, c
-- confirmed from unconfirmed, = unchanged, x refused because unsubscribed).
local US = '\31'
local function split(s)
  local out, i = {}, 1
  while true do
    local j = string.find(s, US, i, true)
    if not j then
      out[#out + 1] = string.sub(s, i)
      return out
    end
    out[#out + 1] = string.sub(s, i, j - 1)
    i = j + 1
  end
end

local shard, shards = tonumber(ARGV[1]), tonumber(ARGV[2])
local lists = {}
for l in string.gmatch(ARGV[3], '[^,]+') do lists[#lists + 1] = l end
local want, now, source, update = ARGV[4], ARGV[5], ARGV[6], ARGV[7] == '1'
local hprefix, hmax = ARGV[8], tonumber(ARGV[9])
local first = 10
local n = (#ARGV - first + 1) / 6
if n < 1 then return {} end

local keys = {}
for r = 1, n do keys[r] = ARGV[first + (r - 1) * 6] end
local found = redis.call('HMGET', KEYS[2], unpack(keys))

local fresh, pending = 0, {}
for r = 1, n do
  if not found[r] and not pending[keys[r]] then
    fresh = fresh + 1
    pending[keys[r]] = true
  end
end
local number = 0
if fresh > 0 then number = redis.call('INCRBY', KEYS[3], fresh) - fresh end

local rid, id_of, is_new = {}, {}, {}
for r = 1, n do
  local k = keys[r]
  local id = found[r] or id_of[k]
  if not id then
    number = number + 1
    id = tostring(number * shards + shard)
    is_new[id] = true
  end
  id_of[k] = id
  rid[r] = id
end

local recs = {}
if update then
  local got = redis.call('HMGET', KEYS[1], unpack(rid))
  for r = 1, n do
    if got[r] and recs[rid[r]] == nil then recs[rid[r]] = got[r] end
  end
end

local members = {}
for li = 1, #lists do
  local got = redis.call('HMGET', KEYS[2 + li * 2], unpack(rid))
  local state = {}
  for r = 1, n do
    if state[rid[r]] == nil then state[rid[r]] = got[r] or '' end
  end
  members[li] = state
end

local rec_writes, idx_writes = {}, {}
local mem_writes, deltas = {}, {}
for li = 1, #lists do
  mem_writes[li] = {}
  deltas[li] = {u = 0, c = 0, x = 0}
end
local out = {}
for r = 1, n do
  local base = first + (r - 1) * 6
  local email, name, locale, attrs, mask = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4], ARGV[base + 5]
  local id = rid[r]
  local s_out = '='
  if is_new[id] then
    is_new[id] = nil
    local status = string.sub(mask, 4, 4)
    if status == '-' then status = 'e' end
    local rec = table.concat({email, name, locale, attrs, status, now, now}, US)
    recs[id] = rec
    rec_writes[#rec_writes + 1] = id
    rec_writes[#rec_writes + 1] = rec
    idx_writes[#idx_writes + 1] = keys[r]
    idx_writes[#idx_writes + 1] = id
    s_out = 'n'
  elseif update and recs[id] then
    local f = split(recs[id])
    local changed = false
    local given = {name, locale, attrs}
    for i = 1, 3 do
      if string.sub(mask, i, i) == '1' and f[i + 1] ~= given[i] then
        f[i + 1] = given[i]
        changed = true
      end
    end
    local status = string.sub(mask, 4, 4)
    if status ~= '-' and f[5] ~= status then
      f[5] = status
      changed = true
    end
    if f[1] ~= email then
      f[1] = email
      changed = true
    end
    if changed then
      f[7] = now
      local rec = table.concat(f, US)
      recs[id] = rec
      rec_writes[#rec_writes + 1] = id
      rec_writes[#rec_writes + 1] = rec
      s_out = 'u'
    end
  end
  local m_out = ''
  for li = 1, #lists do
    local current = members[li][id]
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
    end
    m_out = m_out .. o
  end
  out[r] = id .. ':' .. s_out .. ':' .. m_out
end

if #rec_writes > 0 then redis.call('HSET', KEYS[1], unpack(rec_writes)) end
if #idx_writes > 0 then redis.call('HSET', KEYS[2], unpack(idx_writes)) end
for li = 1, #lists do
  if #mem_writes[li] > 0 then redis.call('HSET', KEYS[2 + li * 2], unpack(mem_writes[li])) end
  for s, d in pairs(deltas[li]) do
    if d ~= 0 then redis.call('HINCRBY', KEYS[3 + li * 2], s, d) end
  end
end
return out
