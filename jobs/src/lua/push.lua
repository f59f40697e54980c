-- Push jobs onto one queue. Each job is atomic: its hash, its place in `ready` or `delayed`,
-- its idempotency record and the wake-up signal are written together or not at all (and so is
-- the whole call: a script runs alone).
-- KEYS[1] ready   KEYS[2] delayed   KEYS[3] signal
-- ARGV[1] what a job's key is before its id   ARGV[2] what an idempotency key is before the key
-- ARGV[3] what an owner's limit keys are before their names
-- Then eleven per job: id, payload, max_attempts (0: the worker's default), now (ms),
-- run_at (ms), idempotency window (ms; 0: no key), idempotency key, fingerprint of what is
-- asked for ('' when the job has none), owner (the stored API key that queued it; '' none),
-- the owner's jobs a second and a UTC day (0: no limit).
-- Answers per job {id, 1, fingerprint} when an earlier job answers for this push (with that
-- job's fingerprint, so the caller can tell a retry from a different request reusing the key),
-- {id, 2, 'rate:MS' or 'day:MS'} when the owner's limit refuses it (MS: when to try again),
-- and {id, 0, ''} when this one was queued.
-- The keys built here (job hashes, idempotency records) carry the queue's hash tag, like KEYS.
local answers, ready = {}, {}
local queued = 0

-- The owner's limits (GCRA for the rate, with a second's worth of burst; a counter a UTC
-- day): the refusal as 'rate:MS' / 'day:MS', or nil after taking one of each. An owner's
-- state is read once per call and written once at its end (a batch is mostly one key's).
local owners = {}
local function limited(owner, now, per_second, per_day)
  if owner == '' or (per_second == 0 and per_day == 0) then return nil end
  local day = math.floor(now / 86400000)
  local state = owners[owner]
  if not state then
    state = {rate_key = ARGV[3] .. 'rate:' .. owner,
      day_key = ARGV[3] .. 'day:' .. owner .. ':' .. day, taken = 0, now = now}
    owners[owner] = state
  end
  state.now = math.max(state.now, now)
  if per_second > 0 and not state.tat then
    state.tat = tonumber(redis.call('GET', state.rate_key) or now)
  end
  if per_day > 0 and not state.count then
    state.count = tonumber(redis.call('GET', state.day_key) or '0')
  end
  local tat = now
  if per_second > 0 then
    local interval = 1000 / per_second
    tat = math.max(state.tat, now)
    if tat - now > 1000 - interval then
      return 'rate:' .. math.ceil(tat - now - (1000 - interval))
    end
    tat = tat + interval
  end
  if per_day > 0 then
    if state.count + state.taken >= per_day then
      return 'day:' .. ((day + 1) * 86400000 - now)
    end
    state.taken = state.taken + 1
  end
  if per_second > 0 then state.tat = tat end
  state.day_limited = per_day > 0
  state.rate_limited = per_second > 0
  return nil
end

-- What the call took of each owner's limits, written once.
local function write_limits()
  for _, state in pairs(owners) do
    if state.rate_limited then
      redis.call('SET', state.rate_key, string.format('%.3f', state.tat), 'PX',
        math.ceil(state.tat - state.now) + 1000)
    end
    if state.day_limited and state.taken > 0 then
      redis.call('INCRBY', state.day_key, state.taken)
      redis.call('PEXPIRE', state.day_key, 2 * 86400000)
    end
  end
end

for i = 4, #ARGV, 11 do
  local id = ARGV[i]
  local window = ARGV[i + 5]
  local job = ARGV[1] .. id
  local answer = nil
  if window ~= '0' then
    local idem = ARGV[2] .. ARGV[i + 6]
    local first = redis.call('GET', idem)
    if first then
      answer = {first, 1, redis.call('HGET', ARGV[1] .. first, 'fingerprint') or ''}
    else
      redis.call('SET', idem, id, 'PX', window)
    end
  end
  if not answer and redis.call('EXISTS', job) == 1 then
    answer = {id, 1, redis.call('HGET', job, 'fingerprint') or ''}
  end
  if not answer then
    local refused = limited(ARGV[i + 8], tonumber(ARGV[i + 3]), tonumber(ARGV[i + 9]),
      tonumber(ARGV[i + 10]))
    if refused then
      if window ~= '0' then redis.call('DEL', ARGV[2] .. ARGV[i + 6]) end
      answer = {id, 2, refused}
    end
  end
  if not answer then
    local state = 'queued'
    if tonumber(ARGV[i + 4]) > tonumber(ARGV[i + 3]) then
      state = 'delayed'
      redis.call('ZADD', KEYS[2], ARGV[i + 4], id)
    else
      ready[#ready + 1] = id
    end
    local fields = {'payload', ARGV[i + 1], 'attempts', '0', 'max_attempts', ARGV[i + 2],
      'enqueued_at', ARGV[i + 3], 'run_at', ARGV[i + 4], 'state', state}
    if ARGV[i + 7] ~= '' then
      fields[#fields + 1] = 'fingerprint'
      fields[#fields + 1] = ARGV[i + 7]
    end
    if ARGV[i + 8] ~= '' then
      fields[#fields + 1] = 'owner'
      fields[#fields + 1] = ARGV[i + 8]
    end
    redis.call('HSET', job, unpack(fields))
    queued = queued + 1
    answer = {id, 0, ''}
  end
  answers[#answers + 1] = answer
end
write_limits()
if #ready > 0 then
  redis.call('LPUSH', KEYS[1], unpack(ready))
end
-- One wake-up per job queued (a delayed one too: a sleeper may need to shorten its wait to
-- its due time), as many as the signal list holds.
if queued > 0 then
  local tokens = {}
  for _ = 1, math.min(queued, 64) do tokens[#tokens + 1] = '1' end
  redis.call('LPUSH', KEYS[3], unpack(tokens))
  redis.call('LTRIM', KEYS[3], 0, 63)
end
return answers
