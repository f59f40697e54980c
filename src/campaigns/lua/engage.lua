-- Counts one provider event for a campaign and pauses the campaign when its complaint or
-- bounce rate passes its guard, once enough mail was delivered to judge.
-- KEYS: 1 the campaign's hash
-- ARGV: 1 the counter (ev:delivered, ev:open, …), 2 the complaint line (fraction),
--       3 the bounce line (fraction), 4 the fewest deliveries to judge by, 5 now (ms)
-- Answers 0, or 1 when this event paused the campaign. A campaign that expired counts nothing.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if ARGV[1] ~= 'ev:spamreport' and ARGV[1] ~= 'ev:bounce' then
  return 0
end
local f = redis.call('HMGET', KEYS[1], 'state', 'ev:delivered', 'ev:bounce', 'ev:spamreport')
if f[1] ~= 'running' then
  return 0
end
local delivered, bounces, complaints = tonumber(f[2] or '0'), tonumber(f[3] or '0'), tonumber(f[4] or '0')
local reason = nil
if delivered >= tonumber(ARGV[4]) and complaints > delivered * tonumber(ARGV[2]) then
  reason = string.format('complaint rate %.2f%% passed the guard of %.2f%%', 100 * complaints / delivered, 100 * tonumber(ARGV[2]))
end
local attempted = delivered + bounces
if not reason and attempted >= tonumber(ARGV[4]) and bounces > attempted * tonumber(ARGV[3]) then
  reason = string.format('bounce rate %.2f%% passed the guard of %.2f%%', 100 * bounces / attempted, 100 * tonumber(ARGV[3]))
end
if not reason then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'paused', 'paused_reason', reason, 'updated_at', ARGV[5])
return 1
