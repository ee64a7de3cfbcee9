-- unkey's sliding window (§5.2) for Redis: KEYS[1] identifier, ARGV limit,
-- duration (ms), cost.  One counter key per identifier, duration and window,
-- expiring after two windows.  Returns {allowed (1/0), remaining}.
local limit, d, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = math.floor(now / d)
local base = KEYS[1] .. ':' .. d .. ':'
local curkey, prevkey = base .. seq, base .. (seq - 1)
local v = redis.call('MGET', curkey, prevkey)
local cur, prev = tonumber(v[1]) or 0, tonumber(v[2]) or 0
local effective = cur + math.floor(prev * (1 - (now - seq * d) / d)) + cost
if effective > limit then
	return {0, 0}
end
redis.call('INCRBY', curkey, cost)
redis.call('PEXPIRE', curkey, 2 * d)
return {1, limit - effective}
