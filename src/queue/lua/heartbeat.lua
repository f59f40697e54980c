-- A worker's periodic heartbeat: renew the leases it still holds, mark itself alive, and trim
-- what would otherwise grow: dead workers and dead letters past their retention.
-- KEYS[1] inflight   KEYS[2] workers   KEYS[3] dead
-- ARGV[1] job key prefix   ARGV[2] now (ms)   ARGV[3] new lease deadline (ms)
-- ARGV[4] worker name   ARGV[5] forget workers silent since (ms)
-- ARGV[6] drop dead letters older than (ms)   ARGV[7..] pairs of id, lease token
-- Returns how many leases were renewed.
local renewed = 0
for i = 7, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', ARGV[1] .. id, 'attempts') == ARGV[i + 1] then
    renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[3], id)
  end
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[6])
return renewed
