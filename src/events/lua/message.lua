-- Applies events to their messages: dedupe, timeline (the newest ARGV[4] kept), delivery
-- status, first-open and first-click marks. Every key is declared; on Redis Cluster one call
-- holds the events of one message (its keys share the message's hash tag). See
-- src/events/store.rs for the argument order.
--
-- KEYS, per event: seen-by-SendGrid-id, seen-by-identity, timeline, delivery, unique mark
-- ARGV[1] dedupe ttl (s)   ARGV[2] keep (s)   ARGV[3] unique-mark ttl (s)   ARGV[4] timeline cap
-- ARGV, per event from 5: has SendGrid id ('1' or ''), message ('' if unknown), email, status,
--   rank, wants a unique mark ('1' or ''), timeline line, the event's name for the counters
-- Returns, per event: 'fresh' | 'duplicate' | 'refused', then the unique flag ('u' or '') or
-- why it was refused, then the counters' name of the event first applied ('' if refused).
-- A duplicate returns what its first application found (the unique flag, and that event's
-- name, which may differ: a duplicate by identity can carry another SendGrid id), so the
-- counters (applied by another script, with marks of their own) count it once, on a retry too.
local dedupe_ttl, keep, unique_ttl = ARGV[1], ARGV[2], ARGV[3]
local timeline_cap = tonumber(ARGV[4])
local NKEYS, NARGS = 5, 8

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

-- Sets `field` to the status when it ranks above `current`, the field's stored rank.
local function raise(key, field, current, rank, status)
  if current < rank then
    redis.call('HSET', key, field, rank .. ':' .. status)
  end
end

local function expect(key, wanted)
  local kind = redis.call('TYPE', key).ok
  if kind ~= 'none' and kind ~= wanted then
    error(key .. ' is a ' .. kind .. ', not a ' .. wanted)
  end
end

-- One event's effects. What can refuse (a key of another type, a status mailroom cannot read)
-- is checked before the first write, so a refusal leaves nothing half done; the caller runs
-- this in pcall and marks the event seen only after it returned.
local function apply(timeline, delivery, unique, message, email, status, rank, wants_unique, line)
  if message ~= '' then
    expect(timeline, 'list')
    local mine, overall
    if status ~= '' then
      expect(delivery, 'hash')
      local current = redis.call('HMGET', delivery, email, '')
      mine, overall = rank_of(current[1]), rank_of(current[2])
    end
    redis.call('RPUSH', timeline, line)
    redis.call('LTRIM', timeline, -timeline_cap, -1)
    redis.call('EXPIRE', timeline, keep)
    if status ~= '' then
      raise(delivery, email, mine, rank, status)
      raise(delivery, '', overall, rank, status)
      redis.call('EXPIRE', delivery, keep)
    end
  end
  if wants_unique ~= '' and redis.call('SET', unique, '1', 'NX', 'EX', unique_ttl) then
    return 'u'
  end
  return ''
end

local out = {}
local n = 0
for i = 5, #ARGV, NARGS do
  local k = n * NKEYS
  n = n + 1
  local has_id, message, email, status, rank, wants_unique, line, name =
    unpack(ARGV, i, i + NARGS - 1)
  local seen_id, seen_key = KEYS[k + 1], KEYS[k + 2]
  -- A mark holds the unique flag ('u' or '-') and the counters' name of the event that set it.
  local mark = (has_id ~= '' and redis.call('GET', seen_id)) or redis.call('GET', seen_key)
  if mark then
    out[#out + 1] = 'duplicate'
    out[#out + 1] = (string.sub(mark, 1, 1) == 'u') and 'u' or ''
    out[#out + 1] = string.sub(mark, 3)
  else
    local ok, flag = pcall(apply, KEYS[k + 3], KEYS[k + 4], KEYS[k + 5], message, email, status,
      tonumber(rank), wants_unique, line)
    if ok then
      -- Seen only once its effects are written: a refused event is applied when retried.
      local value = ((flag == 'u') and 'u' or '-') .. ':' .. name
      if has_id ~= '' then
        redis.call('SET', seen_id, value, 'EX', dedupe_ttl)
      end
      redis.call('SET', seen_key, value, 'EX', dedupe_ttl)
      out[#out + 1] = 'fresh'
      out[#out + 1] = flag
      out[#out + 1] = name
    else
      out[#out + 1] = 'refused'
      out[#out + 1] = type(flag) == 'table' and flag.err or tostring(flag)
      out[#out + 1] = ''
    end
  end
end
return out
