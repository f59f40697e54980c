-- Connections to one receiving domain in use across every worker: a sorted set of leases.
-- KEYS: 1 the domain's leases (member: a send's token, score: when its lease ends, µs)
-- ARGV: 1 take | give, 2 the token, 3 (take) the limit, 4 (take) the lease (µs)
-- Answers 1 when the slot is taken (or given back), 0 when every slot is in use. Leases of
-- workers that died end on their own.
if ARGV[1] == 'give' then
  redis.call('ZREM', KEYS[1], ARGV[2])
  return 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[4])), ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[4]) / 1000))
return 1
