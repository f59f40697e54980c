-- Push jobs that are new (made for this push and never pushed before), due now and without an
-- idempotency key. There is nothing to look up for them (no earlier push of the id, no key),
-- so each is only its hash and its place in `ready`, written with the wake-up signal in one
-- atomic call; the hash has the fields push.lua writes for a job queued now. Every other job
-- goes through push.lua.
-- KEYS[1] ready   KEYS[2] signal
-- ARGV[1] what a job's key is before its id   ARGV[2] now (ms)
-- Then three per job: id, payload, max_attempts (0: the worker's default).
-- Answers the number of jobs queued.
-- The job keys built here carry the queue's hash tag, like KEYS.
local now, ids = ARGV[2], {}
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  redis.call('HSET', ARGV[1] .. id, 'payload', ARGV[i + 1], 'attempts', '0', 'max_attempts', ARGV[i + 2],
    'enqueued_at', now, 'run_at', now, 'state', 'queued')
  ids[#ids + 1] = id
end
if #ids > 0 then
  redis.call('LPUSH', KEYS[1], unpack(ids))
  -- One wake-up per job, as many as the signal list holds (as push.lua).
  local tokens = {}
  for _ = 1, math.min(#ids, 64) do tokens[#tokens + 1] = '1' end
  redis.call('LPUSH', KEYS[2], unpack(tokens))
  redis.call('LTRIM', KEYS[2], 0, 63)
end
return #ids
