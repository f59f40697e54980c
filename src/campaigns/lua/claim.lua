-- Claims recipients for a hand-over: those not done yet, if the campaign is running this run.
-- A recipient whose hand-over began before (its `try` bit is set) but never finished was under
-- way when a worker died: it is sent again and counted as possibly duplicated.
-- KEYS: 1 the campaign's hash, 2 done, 3 try
-- ARGV: 1 the run, 2… ordinals
-- Answers {state, claimed ordinals…} (no ordinals unless the state is running).
local fields = redis.call('HMGET', KEYS[1], 'state', 'run')
if fields[1] ~= 'running' or fields[2] ~= ARGV[1] then
  return {fields[1] or 'missing'}
end
local claimed, again = {'running'}, 0
-- Ordinals pass to GETBIT and SETBIT as the strings they came as: turning them into Lua numbers
-- and back costs Redis a printf per call.
for i = 2, #ARGV do
  local n = ARGV[i]
  if redis.call('GETBIT', KEYS[2], n) == 0 then
    if redis.call('SETBIT', KEYS[3], n, 1) == 1 then
      again = again + 1
    end
    claimed[#claimed + 1] = n
  end
end
if again > 0 then
  redis.call('HINCRBY', KEYS[1], 'possibly_duplicated', again)
end
return claimed
