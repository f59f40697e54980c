-- Takes a deleted list out of some of its members' records and members hash (one step of
-- deleting a list; the caller walks the members hash).
-- KEYS: 1 the list's members (this shard).
-- ARGV: 1 list id, 2 record bucket key prefix, 3 ids per bucket span, then subscriber ids.
-- Builds record bucket keys from the prefix; they share the members hash's tag and slot.
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = bucket_key(ARGV[2], tonumber(ARGV[3]), id)
  local raw = redis.call('HGET', key, id)
  if raw then
    local f = split(raw)
    f[8] = with_membership(f[8], ARGV[1], '')
    redis.call('HSET', key, id, join(f))
  end
  redis.call('HDEL', KEYS[1], id)
end
return #ARGV - 3
