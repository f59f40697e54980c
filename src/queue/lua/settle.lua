-- Record how a leased run ended. Ignored (returns 0) unless the caller still holds the lease:
-- the job is in flight and its attempt counter equals the lease token handed out at fetch.
-- A late answer from a worker whose lease expired and was reclaimed changes nothing.
-- KEYS[1] job hash   KEYS[2] inflight   KEYS[3] delayed   KEYS[4] dead   KEYS[5] ready
-- KEYS[6] signal   KEYS[7] counts
-- ARGV[1] id   ARGV[2] lease token   ARGV[3] outcome: done | retry | dead | release
-- ARGV[4] now (ms)   ARGV[5] done: retention (ms); retry: run-at (ms); dead: retention (ms)
-- ARGV[6] error text (retry, dead)   ARGV[7] dead-letter reason (dead)
local id = ARGV[1]
if not redis.call('ZSCORE', KEYS[2], id) then
  return 0
end
if redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[2] then
  return 0
end
redis.call('ZREM', KEYS[2], id)
local outcome = ARGV[3]
local now = ARGV[4]
if outcome == 'done' then
  -- The payload is not needed once sent; the record stays for the retention period.
  redis.call('HDEL', KEYS[1], 'payload', 'worker')
  redis.call('HSET', KEYS[1], 'state', 'done', 'finished_at', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('HINCRBY', KEYS[7], 'done', 1)
elseif outcome == 'retry' then
  redis.call('HDEL', KEYS[1], 'worker')
  redis.call('HSET', KEYS[1], 'state', 'retrying', 'last_error', ARGV[6], 'run_at', ARGV[5])
  redis.call('ZADD', KEYS[3], ARGV[5], id)
  redis.call('HINCRBY', KEYS[7], 'retried', 1)
  redis.call('LPUSH', KEYS[6], '1')
  redis.call('LTRIM', KEYS[6], 0, 63)
elseif outcome == 'dead' then
  redis.call('HDEL', KEYS[1], 'worker')
  redis.call('HSET', KEYS[1], 'state', 'dead', 'reason', ARGV[7], 'last_error', ARGV[6],
    'finished_at', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('ZADD', KEYS[4], now, id)
  redis.call('HINCRBY', KEYS[7], 'dead', 1)
elseif outcome == 'release' then
  -- Handed back unstarted or cut off by a shutdown: not the job's fault, so not an attempt.
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  redis.call('HDEL', KEYS[1], 'worker')
  redis.call('HSET', KEYS[1], 'state', 'queued')
  redis.call('RPUSH', KEYS[5], id)
  redis.call('LPUSH', KEYS[6], '1')
  redis.call('LTRIM', KEYS[6], 0, 63)
else
  return redis.error_reply('unknown outcome ' .. outcome)
end
return 1
