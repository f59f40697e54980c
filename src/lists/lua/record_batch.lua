-- Adds one import batch's counts and reported rows, once: batches are recorded in order, and
-- a batch whose number is not past the last one recorded (a retry after a lost answer) changes
-- nothing.
-- KEYS: 1 the import's hash, 2 its reported rows.
-- ARGV: 1 batch number (from 1), 2 reported rows kept, 3 seconds the rows are kept, 4 rows,
-- 5 imported, 6 updated, 7 skipped, 8 invalid, then the batch's reported rows.
local last = tonumber(redis.call('HGET', KEYS[1], 'batches') or '0')
if tonumber(ARGV[1]) <= last then return 0 end
redis.call('HSET', KEYS[1], 'batches', ARGV[1])
local fields = {'rows', 'imported', 'updated', 'skipped', 'invalid'}
for i = 1, 5 do
  local n = tonumber(ARGV[3 + i])
  if n > 0 then redis.call('HINCRBY', KEYS[1], fields[i], n) end
end
if #ARGV > 8 then
  redis.call('HINCRBY', KEYS[1], 'error_count', #ARGV - 8)
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 9))
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return 1
