-- Seals a campaign's audience snapshot once it is written whole: from then on the audience is
-- fixed. A campaign with nobody to send to finishes here.
-- KEYS: 1 the campaign's hash, 2 snapshot, 3 done, 4 try, 5 reasons
-- ARGV: 1 the run, 2 audience size, 3 now (ms), 4 retention (seconds)
-- Answers 1 when sealed, 0 when the campaign is no longer running this run (the snapshot is
-- dropped).
local fields = redis.call('HMGET', KEYS[1], 'state', 'run', 'audience')
if fields[3] then
  return 1
end
if fields[1] ~= 'running' or fields[2] ~= ARGV[1] then
  redis.call('DEL', KEYS[2])
  return 0
end
redis.call('PERSIST', KEYS[2])
redis.call('HSET', KEYS[1], 'audience', ARGV[2], 'done', 0)
if tonumber(ARGV[2]) == 0 then
  redis.call('HSET', KEYS[1], 'state', 'finished', 'finished_at', ARGV[3], 'updated_at', ARGV[3])
  for i = 1, 5 do
    redis.call('EXPIRE', KEYS[i], ARGV[4])
  end
end
return 1
