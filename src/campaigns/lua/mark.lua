-- Records how recipients ended (sent, skipped, failed), each once, and finishes the campaign
-- when nobody is left; or (release) gives claimed recipients back untried, when the provider
-- refused them without sending (429, 5xx, a refused connection).
-- KEYS: 1 the campaign's hash, 2 done, 3 try, 4 reasons, 5 snapshot
-- ARGV: 1 outcome (sent | skipped | failed | release), 2 reason ('' for none), 3 now (ms),
--       4 retention (seconds), 5 the most distinct reasons kept, 6… ordinals
-- Answers {recipients newly recorded, 1 if the campaign finished}. Ordinals go to SETBIT as the
-- strings they came as (a Lua number would cost a printf each).
if ARGV[1] == 'release' then
  for i = 6, #ARGV do
    redis.call('SETBIT', KEYS[3], ARGV[i], 0)
  end
  return {0, 0}
end
local count = 0
for i = 6, #ARGV do
  if redis.call('SETBIT', KEYS[2], ARGV[i], 1) == 0 then
    count = count + 1
  end
end
if count == 0 then
  return {0, 0}
end
redis.call('HINCRBY', KEYS[1], ARGV[1], count)
local done = redis.call('HINCRBY', KEYS[1], 'done', count)
if ARGV[2] ~= '' then
  local field = ARGV[1] .. ':' .. ARGV[2]
  if redis.call('HEXISTS', KEYS[4], field) == 0 and redis.call('HLEN', KEYS[4]) >= tonumber(ARGV[5]) then
    field = ARGV[1] .. ':other'
  end
  redis.call('HINCRBY', KEYS[4], field, count)
end
local fields = redis.call('HMGET', KEYS[1], 'audience', 'state')
if fields[1] and tonumber(fields[1]) == done and (fields[2] == 'running' or fields[2] == 'paused') then
  redis.call('HSET', KEYS[1], 'state', 'finished', 'finished_at', ARGV[3], 'updated_at', ARGV[3])
  for i = 1, 5 do
    redis.call('EXPIRE', KEYS[i], ARGV[4])
  end
  return {count, 1}
end
return {count, 0}
