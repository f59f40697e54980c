-- A shared rate limit (GCRA): may `n` more sends go now?
-- KEYS: 1 the throttle's theoretical arrival time (µs), 2 its hold (µs: a provider's 429)
-- ARGV: 1 microseconds per send (1e6 / rate), 2 the burst allowed (µs), 3 n
-- The sends may go when, counted, the arrival time runs at most the burst ahead of now.
-- Answers 0 when the sends may go (and counts them), else how many µs to wait.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hold = tonumber(redis.call('GET', KEYS[2]) or '0')
if hold > now then
  return hold - now
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
local burst = tonumber(ARGV[2])
local after = tat + tonumber(ARGV[1]) * tonumber(ARGV[3])
if after - now > burst then
  return after - now - burst
end
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.ceil((after - now) / 1000) + 1000)
return 0
