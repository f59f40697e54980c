-- Creates or updates subscribers of one shard and subscribes them to lists, for a batch of rows.
-- KEYS: 1 address index, 2 number sequence, then per list: members, counts.
-- ARGV: 1 shard, 2 shard count, 3 list ids (comma-separated, may be empty), 4 wanted status
-- (u or c), 5 now (unix seconds), 6 source, 7 update existing records (1/0), 8 history key
-- prefix (this shard's tag), 9 history length kept, 10 record bucket key prefix, 11 ids per
-- bucket, then 3 per row: case key; the record as stored if the subscriber is new (address,
-- name, locale, attributes JSON, status, now twice and the lists with the wanted status, joined
-- by the unit separator: built by the caller, so Redis concatenates nothing for a new row);
-- mask (4 characters: name, locale, attributes given as 1/0; status e, b or - for unchanged).
-- Record bucket keys are built here (a new subscriber's id is only known here); they share this
-- shard's hash tag, so they live in the slot of the declared keys.
-- Answers per row `id:S:M…` (S: n new, u updated, = unchanged; M per list: n new, c
-- confirmed from unconfirmed, = unchanged, x refused because unsubscribed), the rows' answers
-- joined by spaces in one string (one reply value, not one per row, for Redis and the caller).
--
-- Redis runs this for every imported row, so it is written for Lua's costs: state lives in
-- arrays indexed by subscriber (the `s`-prefixed tables, one entry per distinct subscriber of
-- the call) rather than tables keyed by id, strings every row shares are built once, and
-- characters are compared as bytes.
local shard, shards = tonumber(ARGV[1]), tonumber(ARGV[2])
local lists = {}
for l in string.gmatch(ARGV[3], '[^,]+') do lists[#lists + 1] = l end
local nl = #lists
local want, now, source, update = ARGV[4], ARGV[5], ARGV[6], ARGV[7] == '1'
local hprefix, hmax = ARGV[8], tonumber(ARGV[9])
local rprefix, span = ARGV[10], tonumber(ARGV[11])
local first, per_row = 12, 3
local n = (#ARGV - first + 1) / per_row
if n < 1 then return '' end

local byte, sub, format = string.byte, string.sub, string.format
local ONE, DASH = byte('1'), byte('-')

local keys = {}
for r = 1, n do keys[r] = ARGV[first + (r - 1) * per_row] end
local found = redis.call('HMGET', KEYS[1], unpack(keys))

-- Subscriber s of this call: sid[s] its id, snew[s] true when it is created here (sgiven then
-- holds its record as the caller built it, until an update splits it into srec),
-- srec[s] its split record (false when indexed without one), sms its memberships, sbucket its
-- bucket number, sdirty whether its record is written. slot[r] is row r's subscriber.
local sid, snew, sgiven, srec, sms, sbucket, sdirty = {}, {}, {}, {}, {}, {}, {}
local slot, of_key, of_id = {}, {}, {}
local ns = 0
local fresh = 0
for r = 1, n do
  if not found[r] and not of_key[keys[r]] then
    fresh = fresh + 1
    of_key[keys[r]] = -1
  end
end
local number = 0
if fresh > 0 then number = redis.call('INCRBY', KEYS[2], fresh) - fresh end

local known = {}
for r = 1, n do
  local id = found[r]
  local s
  if id then
    s = of_id[id]
    if not s then
      ns = ns + 1
      s = ns
      of_id[id] = s
      sid[s], snew[s] = id, false
      sbucket[s] = math.floor(tonumber(id) / span)
      local raw = redis.call('HGET', rprefix .. sbucket[s], id)
      if raw then
        srec[s] = split(raw)
        sms[s] = srec[s][8]
      else
        srec[s] = false
      end
      known[#known + 1] = id
    end
  else
    s = of_key[keys[r]]
    if s == -1 then
      number = number + 1
      ns = ns + 1
      s = ns
      of_key[keys[r]] = s
      local num = number * shards + shard
      sid[s], snew[s], srec[s] = format('%d', num), true, false
      sbucket[s] = math.floor(num / span)
    end
  end
  slot[r] = s
end

-- Subscriptions can only exist for subscribers that did: a batch of new ones reads none.
-- mstate[li][s]: subscriber s's subscription to list li (nil: none).
local mstate = {}
for li = 1, nl do
  local state = {}
  if #known > 0 then
    local got = redis.call('HMGET', KEYS[1 + li * 2], unpack(known))
    for i = 1, #known do state[of_id[known[i]]] = got[i] or nil end
  end
  mstate[li] = state
end

-- What every new subscription holds, and what a confirmation holds.
local value_want = want .. '|' .. now .. '|' .. source
local value_c = 'c|' .. now .. '|' .. source
local new_ms = {}
for li = 1, nl do new_ms[#new_ms + 1] = lists[li] .. want end
new_ms = table.concat(new_ms, ',')
local all_new = ':n:' .. string.rep('n', nl)

local order = {}
local mem_writes, deltas = {}, {}
for li = 1, nl do
  mem_writes[li] = {}
  deltas[li] = {u = 0, c = 0, x = 0}
end
local idx_writes = {}
local out = {}
for r = 1, n do
  local base = first + (r - 1) * per_row
  local given, mask = ARGV[base + 1], ARGV[base + 2]
  local s = slot[r]
  local s_out = '='
  local mark = byte(mask, 4)
  if snew[s] and not sgiven[s] and not srec[s] then
    sgiven[s] = given
    idx_writes[#idx_writes + 1] = keys[r]
    idx_writes[#idx_writes + 1] = sid[s]
    s_out = 'n'
    sdirty[s] = true
    order[#order + 1] = s
  elseif update and (sgiven[s] or srec[s]) then
    -- The same address again in this call (a new record: split it) or an existing one.
    local f = srec[s]
    if not f then
      f = split(sgiven[s])
      sgiven[s] = false
      srec[s] = f
    end
    local g = split(given)
    local changed = false
    for i = 1, 3 do
      if byte(mask, i) == ONE and f[i + 1] ~= g[i + 1] then
        f[i + 1] = g[i + 1]
        changed = true
      end
    end
    if mark ~= DASH then
      local status = string.char(mark)
      if f[5] ~= status then
        f[5] = status
        changed = true
      end
    end
    if f[1] ~= g[1] then
      f[1] = g[1]
      changed = true
    end
    if changed then
      f[7] = now
      s_out = 'u'
      if not sdirty[s] then
        sdirty[s] = true
        order[#order + 1] = s
      end
    end
  end
  if s_out == 'n' and nl > 0 then
    -- A new subscriber has no subscriptions: each list's is new.
    for li = 1, nl do
      mstate[li][s] = value_want
      local w = mem_writes[li]
      w[#w + 1] = sid[s]
      w[#w + 1] = value_want
      deltas[li][want] = deltas[li][want] + 1
    end
    sms[s] = new_ms
    out[r] = sid[s] .. all_new
  else
    local m_out = ''
    for li = 1, nl do
      local current = mstate[li][s]
      local cs = current and sub(current, 1, 1) or ''
      local nst, value, o = nil, nil, '='
      if cs == '' then
        nst, value, o = want, value_want, 'n'
      elseif cs == 'x' then
        o = 'x'
      elseif cs == 'u' and want == 'c' then
        nst, value, o = 'c', value_c, 'c'
      end
      if nst then
        if cs ~= '' then
          local h = hprefix .. sid[s]
          redis.call('LPUSH', h, lists[li] .. '|' .. current)
          redis.call('LTRIM', h, 0, hmax - 1)
          deltas[li][cs] = deltas[li][cs] - 1
        end
        deltas[li][nst] = deltas[li][nst] + 1
        mstate[li][s] = value
        local w = mem_writes[li]
        w[#w + 1] = sid[s]
        w[#w + 1] = value
        if sms[s] then
          sms[s] = with_membership(sms[s], lists[li], nst)
          if not sdirty[s] then
            sdirty[s] = true
            order[#order + 1] = s
          end
        end
      end
      m_out = m_out .. o
    end
    if s_out == 'n' then sms[s] = '' end
    out[r] = sid[s] .. ':' .. s_out .. ':' .. m_out
  end
end

-- One HSET per bucket: new subscribers have consecutive numbers, so a batch fills few buckets.
local writes, bucket_order = {}, {}
for _, s in ipairs(order) do
  local b = sbucket[s]
  local w = writes[b]
  if not w then
    w = {}
    writes[b] = w
    bucket_order[#bucket_order + 1] = b
  end
  w[#w + 1] = sid[s]
  if sgiven[s] then
    w[#w + 1] = sgiven[s]
  else
    srec[s][8] = sms[s]
    w[#w + 1] = join(srec[s])
  end
end
for _, b in ipairs(bucket_order) do
  redis.call('HSET', rprefix .. format('%d', b), unpack(writes[b]))
end
if #idx_writes > 0 then redis.call('HSET', KEYS[1], unpack(idx_writes)) end
for li = 1, nl do
  if #mem_writes[li] > 0 then redis.call('HSET', KEYS[1 + li * 2], unpack(mem_writes[li])) end
  for st, d in pairs(deltas[li]) do
    if d ~= 0 then redis.call('HINCRBY', KEYS[2 + li * 2], st, d) end
  end
end
return table.concat(out, ' ')
