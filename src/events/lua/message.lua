-- Applies events to their messages: dedupe, timeline (the newest ARGV[4] kept), delivery
-- status, first-open and first-click marks. Every key is declared; on Redis Cluster one call
-- holds the events of one message (its keys share the message's hash tag). See
-- src/events/store.rs for the argument order.
--
-- KEYS, per event: seen-by-SendGrid-id, seen-by-identity, timeline, delivery, unique mark
-- ARGV[1] dedupe ttl (s)   ARGV[2] keep (s)   ARGV[3] unique-mark ttl (s)   ARGV[4] timeline cap
-- ARGV, per event from 5: has SendGrid id ('1' or ''), message ('' if unknown), email, status,
--   rank, wants a unique mark ('1' or ''), timeline line
-- Returns, per event: 'fresh' | 'duplicate' | 'refused', then the unique flag ('u' or '') or
-- why it was refused. A duplicate returns the unique flag its first application found, so the
-- counters (applied by another script, with dedupe of their own) are the same on a retry.
local dedupe_ttl, keep, unique_ttl = ARGV[1], ARGV[2], ARGV[3]
local timeline_cap = tonumber(ARGV[4])
local NKEYS, NARGS = 5, 7

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
    if status ~= '' then
      expect(delivery, 'hash')
      rank_of(redis.call('HGET', delivery, email))
      rank_of(redis.call('HGET', delivery, ''))
    end
    redis.call('RPUSH', timeline, line)
    redis.call('LTRIM', timeline, -timeline_cap, -1)
    redis.call('EXPIRE', timeline, keep)
    if status ~= '' then
      raise(delivery, email, rank, status)
      raise(delivery, '', rank, status)
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
  local has_id, message, email, status, rank, wants_unique, line = unpack(ARGV, i, i + NARGS - 1)
  local seen_id, seen_key = KEYS[k + 1], KEYS[k + 2]
  local mark = (has_id ~= '' and redis.call('GET', seen_id)) or redis.call('GET', seen_key)
  if mark then
    out[#out + 1] = 'duplicate'
    out[#out + 1] = (mark == 'u') and 'u' or ''
  else
    local ok, flag = pcall(apply, KEYS[k + 3], KEYS[k + 4], KEYS[k + 5], message, email, status,
      tonumber(rank), wants_unique, line)
    if ok then
      -- Seen only once its effects are written: a refused event is applied when retried.
      local value = (flag == 'u') and 'u' or '1'
      if has_id ~= '' then
        redis.call('SET', seen_id, value, 'EX', dedupe_ttl)
      end
      redis.call('SET', seen_key, value, 'EX', dedupe_ttl)
      out[#out + 1] = 'fresh'
      out[#out + 1] = flag
    else
      out[#out + 1] = 'refused'
      out[#out + 1] = type(flag) == 'table' and flag.err or tostring(flag)
    end
  end
end
return out
