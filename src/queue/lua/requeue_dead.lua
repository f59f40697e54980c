-- Give dead letters a fresh start: attempts back to zero, onto the ready list.
-- KEYS[1] dead   KEYS[2] ready   KEYS[3] signal
-- ARGV[1] job key prefix   ARGV[2] one id, or '' for the oldest ARGV[3] dead letters
-- ARGV[4] now (ms): the letter is ready from then (the oldest-ready-age metric reads it)
-- Returns {looked at, requeued}: a dead letter whose record expired is dropped, not requeued.
local ids
if ARGV[2] ~= '' then
  ids = {ARGV[2]}
else
  ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
end
local seen, requeued = 0, 0
for i = 1, #ids do
  local id = ids[i]
  local key = ARGV[1] .. id
  local removed = redis.call('ZREM', KEYS[1], id)
  seen = seen + removed
  if removed == 1 and redis.call('HEXISTS', key, 'payload') == 1 then
    redis.call('PERSIST', key)
    redis.call('HSET', key, 'attempts', 0, 'state', 'queued', 'run_at', ARGV[4])
    redis.call('HDEL', key, 'reason', 'finished_at')
    redis.call('LPUSH', KEYS[2], id)
    requeued = requeued + 1
  end
end
if requeued > 0 then
  redis.call('LPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], 0, 63)
end
return {seen, requeued}
