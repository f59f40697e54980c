-- Deletes a subscriber: its subscriptions (with their counts), history, record and address
-- index entry.
-- KEYS: 1 its record bucket, 2 address index, 3 history, then per list: members, counts.
-- ARGV: 1 subscriber id, 2 its case key.
-- Answers 1 when it existed, else 0.
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3])
local i = 4
while i < #KEYS do
  local current = redis.call('HGET', KEYS[i], ARGV[1])
  if current then
    redis.call('HDEL', KEYS[i], ARGV[1])
    redis.call('HINCRBY', KEYS[i + 1], string.sub(current, 1, 1), -1)
  end
  i = i + 2
end
return 1
