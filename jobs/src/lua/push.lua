-- Push one job. Atomic: the job hash, its place in `ready` or `delayed`, the idempotency
-- record and the wake-up signal are written together or not at all.
-- KEYS[1] job hash   KEYS[2] ready   KEYS[3] delayed   KEYS[4] signal   KEYS[5] idempotency key
-- ARGV[1] id   ARGV[2] payload   ARGV[3] max_attempts (0: the worker's default)
-- ARGV[4] now (ms)   ARGV[5] run_at (ms)   ARGV[6] idempotency window (ms; 0: no key)
-- ARGV[7] fingerprint of what is asked for ('' when the job has none)
-- Returns {id, 1, fingerprint} when an earlier job answers for this push (with that job's
-- fingerprint, so the caller can tell a retry from a different request reusing the key), and
-- {id, 0, ''} when this one was queued.
if ARGV[6] ~= '0' then
  local first = redis.call('GET', KEYS[5])
  if first then
    local first_key = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1]) .. first
    return {first, 1, redis.call('HGET', first_key, 'fingerprint') or ''}
  end
  redis.call('SET', KEYS[5], ARGV[1], 'PX', ARGV[6])
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {ARGV[1], 1, redis.call('HGET', KEYS[1], 'fingerprint') or ''}
end
local now = tonumber(ARGV[4])
local run_at = tonumber(ARGV[5])
local state = 'queued'
if run_at > now then
  state = 'delayed'
  redis.call('ZADD', KEYS[3], run_at, ARGV[1])
else
  redis.call('LPUSH', KEYS[2], ARGV[1])
end
redis.call('HSET', KEYS[1], 'payload', ARGV[2], 'attempts', 0, 'max_attempts', ARGV[3],
  'enqueued_at', ARGV[4], 'run_at', ARGV[5], 'state', state)
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[7])
end
-- A delayed job wakes sleepers too: one of them may need to shorten its wait to this due time.
redis.call('LPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, 63)
return {ARGV[1], 0, ''}
