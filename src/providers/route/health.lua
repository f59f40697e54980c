-- A provider's circuit, shared by every worker: one hash per provider.
-- KEYS[1] the health hash
-- ARGV[1] what happened: 'admit' (may a message go?), 'ok', 'fail', 'throttled'
-- ARGV[2] now (ms)   ARGV[3] failures in a row that open   ARGV[4] window (ms)
-- ARGV[5] failures within the window that open   ARGV[6] probe every (ms)
-- ARGV[7] how long a rate limit is waited for before it counts as a failure (ms)
-- Returns { verdict, transition, state, dirty }:
--   admit: 'go' | 'probe' | 'skip' (then the second field is the next probe time, ms)
--   ok: 'done';  fail: 'next';  throttled: 'wait' | 'next'
--   transition: 'opened' | 'closed' | ''   state: 'open' | 'closed'
--   dirty: 1 when a success has something to clear (failures in a row, a rate limit's start)
local key = KEYS[1]
local what = ARGV[1]
local now = tonumber(ARGV[2])
local in_a_row = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local in_window = tonumber(ARGV[5])
local probe_every = tonumber(ARGV[6])
local wait_for = tonumber(ARGV[7])

local open = redis.call('HGET', key, 'state') == 'open'

local function state()
    if open then return 'open' end
    return 'closed'
end

if what == 'admit' then
    if not open then
        local row = tonumber(redis.call('HGET', key, 'in_a_row') or '0')
        local dirty = row > 0 or redis.call('HEXISTS', key, 'throttled_since') == 1
        return { 'go', '', 'closed', dirty and 1 or 0 }
    end
    local probe_at = tonumber(redis.call('HGET', key, 'probe_at') or '0')
    if now >= probe_at then
        -- This message is the probe; the next one may go only after another period.
        redis.call('HSET', key, 'probe_at', now + probe_every)
        return { 'probe', '', 'open', 1 }
    end
    return { 'skip', tostring(probe_at), 'open', 1 }
end

if what == 'ok' then
    redis.call('HSET', key, 'in_a_row', 0)
    redis.call('HDEL', key, 'throttled_since')
    if open then
        redis.call('HSET', key, 'state', 'closed')
        return { 'done', 'closed', 'closed', 0 }
    end
    return { 'done', '', 'closed', 0 }
end

if what == 'throttled' then
    local since = tonumber(redis.call('HGET', key, 'throttled_since') or '')
    if not since then
        redis.call('HSET', key, 'throttled_since', now)
        since = now
    end
    if now - since < wait_for then return { 'wait', '', state(), 1 } end
end

-- A failure, or a rate limit that lasted too long.
local row = redis.call('HINCRBY', key, 'in_a_row', 1)
local started = tonumber(redis.call('HGET', key, 'window_start') or '0')
local failures
if now - started > window then
    redis.call('HSET', key, 'window_start', now, 'window_failures', 1)
    failures = 1
else
    failures = redis.call('HINCRBY', key, 'window_failures', 1)
end
if open then
    -- A failed probe: the next one waits a whole period.
    redis.call('HSET', key, 'probe_at', now + probe_every)
    return { 'next', '', 'open', 1 }
end
if row >= in_a_row or failures >= in_window then
    redis.call('HSET', key, 'state', 'open', 'opened_at', now, 'probe_at', now + probe_every)
    return { 'next', 'opened', 'open', 1 }
end
return { 'next', '', 'closed', 1 }
