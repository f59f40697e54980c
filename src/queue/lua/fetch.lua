-- Lease up to a batch of ready jobs to one worker, after housekeeping that keeps the queue
-- moving: due delayed jobs are promoted and expired leases reclaimed. Every loop is bounded
-- (by ARGV[3] or ARGV[5]), so a backlog of any size is worked through in chunks, never in one
-- unbounded call.
-- KEYS[1] ready   KEYS[2] delayed   KEYS[3] inflight   KEYS[4] dead   KEYS[5] signal   KEYS[6] counts
-- ARGV[1] job key prefix   ARGV[2] now (ms)   ARGV[3] batch size   ARGV[4] lease (ms)
-- ARGV[5] housekeeping chunk   ARGV[6] default max attempts   ARGV[7] worker name
-- ARGV[8] dead-letter retention (ms)   ARGV[9] retention of finished jobs (ms)
-- ARGV[10] the suffix of a record moved aside (`:malformed`, from the key schema)
-- Returns {jobs, next}: jobs as {id, payload, attempts, max_attempts}; next is the earliest
-- time (ms) something else becomes due (a delayed job or a lease deadline), or -1.
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local batch = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local chunk = tonumber(ARGV[5])
local default_max = tonumber(ARGV[6])

local function max_attempts(key)
  local max = tonumber(redis.call('HGET', key, 'max_attempts') or '0') or 0
  if max <= 0 then
    return default_max
  end
  return max
end

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, chunk)
for i = 1, #due do
  redis.call('ZREM', KEYS[2], due[i])
  redis.call('LPUSH', KEYS[1], due[i])
end

-- A job record mailroom cannot read (a key of another type, a counter that is not a number,
-- written by hand or by a bug) is dead-lettered with the reason instead of stopping this
-- script: Redis does not roll back a script that errors, so an error after the RPOP below would
-- leave the ids already popped in neither `ready` nor `inflight`, lost. Every value is checked
-- before the first write of its job, and the one read that can raise is wrapped in pcall.
local function integer_or_absent(value)
  return value == false or value == nil
    or (#value <= 18 and string.match(value, '^%-?%d+$') ~= nil)
end

-- Dead-letters a record mailroom cannot read. What was there is kept for a person to look at:
-- a counter that is not a number is quoted in the error (and reset, so the operator tools can
-- read and retry the letter); a key of another type is moved aside (`…:malformed`).
local function malformed(id, why)
  local key = prefix .. id
  if redis.call('TYPE', key).ok == 'hash' then
    local counters = redis.call('HMGET', key, 'attempts', 'max_attempts')
    for i, field in ipairs({'attempts', 'max_attempts'}) do
      if not integer_or_absent(counters[i]) then
        why = why .. '; ' .. field .. ' was "' .. string.sub(counters[i], 1, 64) .. '"'
        redis.call('HSET', key, field, 0)
      end
    end
  else
    local aside = key .. ARGV[10]
    redis.call('RENAME', key, aside)
    redis.call('PEXPIRE', aside, ARGV[8])
    why = why .. '; the record was moved to ' .. aside
    redis.call('HSET', key, 'attempts', 0)
  end
  redis.call('HSET', key, 'state', 'dead', 'reason', 'malformed job record', 'last_error', why,
    'finished_at', now)
  redis.call('HDEL', key, 'worker')
  redis.call('PEXPIRE', key, ARGV[8])
  redis.call('ZADD', KEYS[4], now, id)
  redis.call('HINCRBY', KEYS[6], 'dead', 1)
end

local function read_job(id, ...)
  local ok, found = pcall(redis.call, 'HMGET', prefix .. id, ...)
  if not ok then
    local why = type(found) == 'table' and found.err or tostring(found)
    return nil, 'the job record cannot be read as a hash: ' .. why
  end
  return found
end

-- A lease that ran out means the worker holding it died or hung: that run counts as an attempt.
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, chunk)
for i = 1, #expired do
  local id = expired[i]
  local key = prefix .. id
  redis.call('ZREM', KEYS[3], id)
  local found, why = read_job(id, 'attempts', 'max_attempts')
  if not found then
    if redis.call('EXISTS', key) == 1 then
      malformed(id, why)
    end
  elseif not integer_or_absent(found[1]) or not integer_or_absent(found[2]) then
    malformed(id, 'attempts or max_attempts is not an integer')
  elseif redis.call('EXISTS', key) == 1 then
    local attempts = tonumber(found[1] or '0')
    local err = 'lease expired: the worker running attempt ' .. attempts ..
      ' stopped renewing it (killed, crashed or cut off from Redis)'
    if attempts >= max_attempts(key) then
      redis.call('HSET', key, 'state', 'dead', 'reason', 'attempts exhausted', 'last_error', err,
        'finished_at', now)
      redis.call('HDEL', key, 'worker')
      redis.call('PEXPIRE', key, ARGV[8])
      redis.call('ZADD', KEYS[4], now, id)
      redis.call('HINCRBY', KEYS[6], 'dead', 1)
    else
      redis.call('HSET', key, 'state', 'queued', 'last_error', err)
      redis.call('RPUSH', KEYS[1], id)
      redis.call('HINCRBY', KEYS[6], 'retried', 1)
    end
  end
end

local jobs = {}
local leased = {}
local deadline = now + lease
local ids = redis.call('RPOP', KEYS[1], batch)
if ids then
  for i = 1, #ids do
    local id = ids[i]
    local key = prefix .. id
    local found, why = read_job(id, 'payload', 'max_attempts', 'completed_at', 'attempts')
    if not found then
      malformed(id, why)
    elseif found[1] and not (integer_or_absent(found[2]) and integer_or_absent(found[4])) then
      malformed(id, 'attempts or max_attempts is not an integer')
    elseif found[1] and found[3] then
      -- An earlier run completed but could not settle (it had lost its lease): finish the job
      -- instead of running it again.
      redis.call('HDEL', key, 'payload', 'worker')
      redis.call('HSET', key, 'state', 'done', 'finished_at', now)
      redis.call('PEXPIRE', key, ARGV[9])
      redis.call('HINCRBY', KEYS[6], 'done', 1)
    elseif found[1] then
      -- (An id whose job is gone, deleted by hand or expired, has nothing left to run.)
      local attempts = redis.call('HINCRBY', key, 'attempts', 1)
      redis.call('HSET', key, 'state', 'running', 'worker', ARGV[7], 'started_at', now)
      local max = tonumber(found[2] or '0') or 0
      if max <= 0 then
        max = default_max
      end
      jobs[#jobs + 1] = {id, found[1], attempts, max}
      leased[#leased + 1] = deadline
      leased[#leased + 1] = id
    end
  end
end
-- At most 2 × batch (≤ 2,000) values: well inside what unpack takes.
if #leased > 0 then
  redis.call('ZADD', KEYS[3], unpack(leased))
end

-- Work is left: pass the wake-up on so another idle worker takes it.
if redis.call('LLEN', KEYS[1]) > 0 then
  redis.call('LPUSH', KEYS[5], '1')
  redis.call('LTRIM', KEYS[5], 0, 63)
end

local next = -1
if #jobs == 0 then
  for _, set in ipairs({KEYS[2], KEYS[3]}) do
    local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
    if first[2] then
      local at = tonumber(first[2])
      if next < 0 or at < next then
        next = at
      end
    end
  end
end
return {jobs, next}
