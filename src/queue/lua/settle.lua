-- Record how leased runs ended, for a batch of runs at once (one call amortizes the script's
-- overhead over many jobs). Each entry is ignored (answers 0) unless its caller still holds
-- the lease: the job is in flight and its attempt counter equals the lease token handed out at
-- fetch. A late answer from a worker whose lease expired and was reclaimed changes nothing.
-- KEYS[1] inflight   KEYS[2] delayed   KEYS[3] dead   KEYS[4] ready   KEYS[5] signal
-- KEYS[6] counts
-- ARGV[1] job key prefix   ARGV[2] now (ms)   ARGV[3] retention (ms)
-- ARGV[4] dead-letter retention (ms)
-- then seven values per run: id, lease token, outcome (done | retry | dead | release |
-- postpone), run-at for a retry or a postponement (ms), error text, dead-letter reason, the handler's output (JSON, or '')
-- Returns one 1 or 0 per run.
local prefix, now = ARGV[1], ARGV[2]
local answers = {}
local done, retried, dead, wake = 0, 0, 0, false
for i = 5, #ARGV, 7 do
  local id, token, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = prefix .. id
  local held = redis.call('HGET', key, 'attempts') == token
    and redis.call('ZREM', KEYS[1], id) == 1
  if not held then
    answers[#answers + 1] = 0
    -- A run that succeeded after losing its lease still did its work (an email went out):
    -- note that, so no later run does it again (the fetch script finishes such a job).
    if outcome == 'done' and redis.call('EXISTS', key) == 1 then
      redis.call('HSET', key, 'completed_at', now)
      if ARGV[i + 6] ~= '' then
        redis.call('HSET', key, 'output', ARGV[i + 6])
      end
    end
  else
    answers[#answers + 1] = 1
    if outcome == 'done' then
      -- The payload is not needed once sent; the record stays for the retention period.
      redis.call('HDEL', key, 'payload', 'worker')
      redis.call('HSET', key, 'state', 'done', 'finished_at', now, 'completed_at', now)
      if ARGV[i + 6] ~= '' then
        redis.call('HSET', key, 'output', ARGV[i + 6])
      end
      redis.call('PEXPIRE', key, ARGV[3])
      done = done + 1
    elseif outcome == 'retry' then
      redis.call('HDEL', key, 'worker')
      redis.call('HSET', key, 'state', 'retrying', 'last_error', ARGV[i + 4], 'run_at', ARGV[i + 3])
      redis.call('ZADD', KEYS[2], ARGV[i + 3], id)
      retried = retried + 1
      wake = true
    elseif outcome == 'dead' then
      redis.call('HDEL', key, 'worker')
      redis.call('HSET', key, 'state', 'dead', 'reason', ARGV[i + 5], 'last_error', ARGV[i + 4],
        'finished_at', now)
      redis.call('PEXPIRE', key, ARGV[4])
      redis.call('ZADD', KEYS[3], now, id)
      dead = dead + 1
    elseif outcome == 'postpone' then
      -- Not started (a limit it shares was full): back later, and the run does not count.
      redis.call('HINCRBY', key, 'attempts', -1)
      redis.call('HDEL', key, 'worker')
      redis.call('HSET', key, 'state', 'queued', 'run_at', ARGV[i + 3])
      redis.call('ZADD', KEYS[2], ARGV[i + 3], id)
      wake = true
    else
      -- release: handed back unstarted or cut off by a shutdown. Not the job's fault, so the
      -- run does not count as an attempt.
      redis.call('HINCRBY', key, 'attempts', -1)
      redis.call('HDEL', key, 'worker')
      redis.call('HSET', key, 'state', 'queued')
      redis.call('RPUSH', KEYS[4], id)
      wake = true
    end
  end
end
if done > 0 then redis.call('HINCRBY', KEYS[6], 'done', done) end
if retried > 0 then redis.call('HINCRBY', KEYS[6], 'retried', retried) end
if dead > 0 then redis.call('HINCRBY', KEYS[6], 'dead', dead) end
if wake then
  redis.call('LPUSH', KEYS[5], '1')
  redis.call('LTRIM', KEYS[5], 0, 63)
end
return answers
