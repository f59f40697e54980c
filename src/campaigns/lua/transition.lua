-- Moves a campaign from one state to another, or says why it cannot.
-- KEYS: 1 the campaign's hash, 2 snapshot, 3 done, 4 try, 5 reasons
-- ARGV: 1 action (schedule | start | pause | resume | cancel), 2 now (ms),
--       3 schedule: send_at (ms); start: the run; pause: the reason, 4 retention (seconds)
-- Answers {1 | 0, the state after, the run after}.
local fields = redis.call('HMGET', KEYS[1], 'state', 'run')
local state, run = fields[1], tonumber(fields[2] or '0')
if not state then
  return {0, 'missing', 0}
end
local action, now = ARGV[1], ARGV[2]
if action == 'schedule' then
  if state ~= 'draft' and state ~= 'scheduled' then
    return {0, state, run}
  end
  run = run + 1
  redis.call('HSET', KEYS[1], 'state', 'scheduled', 'run', run, 'send_at', ARGV[3], 'updated_at', now)
  return {1, 'scheduled', run}
elseif action == 'start' then
  if tonumber(ARGV[3]) ~= run then
    return {0, state, run}
  end
  if state == 'scheduled' then
    redis.call('HSET', KEYS[1], 'state', 'running', 'updated_at', now)
    redis.call('HSETNX', KEYS[1], 'started_at', now)
    return {1, 'running', run}
  end
  return {state == 'running' and 1 or 0, state, run}
elseif action == 'pause' then
  if state ~= 'running' then
    return {0, state, run}
  end
  redis.call('HSET', KEYS[1], 'state', 'paused', 'updated_at', now)
  if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[1], 'paused_reason', ARGV[3])
  end
  return {1, 'paused', run}
elseif action == 'resume' then
  if state ~= 'paused' then
    return {0, state, run}
  end
  run = run + 1
  redis.call('HSET', KEYS[1], 'state', 'running', 'run', run, 'updated_at', now)
  redis.call('HDEL', KEYS[1], 'paused_reason')
  return {1, 'running', run}
elseif action == 'cancel' then
  if state == 'finished' or state == 'cancelled' then
    return {0, state, run}
  end
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', now, 'updated_at', now)
  for i = 1, 5 do
    redis.call('EXPIRE', KEYS[i], ARGV[4])
  end
  return {1, 'cancelled', run}
end
return redis.error_reply('unknown action ' .. action)
