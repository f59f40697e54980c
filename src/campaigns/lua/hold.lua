-- Holds a throttle back until `µs` from now (never shortening a longer hold).
-- KEYS: 1 the hold; ARGV: 1 microseconds
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_ = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < until_ then
  redis.call('SET', KEYS[1], string.format('%.0f', until_), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
end
return 1
