-- A new redeemable token for a live session, the current one counting as
-- just redeemed. KEYS[1] index, KEYS[2] session, KEYS[3] ceiling set.
-- ARGV: 1 sid, 2 successor, 3 ttl ms, 4 class key prefix. Returns 1, or 0
-- if not live.
local h = redis.call('HMGET', KEYS[2], 'state', 'jti', 'dvt')
if h[1] ~= 'live' then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], 'prev', h[2], 'prev_at', now, 'jti', ARGV[2], 'refreshed', now)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', ARGV[4] .. (h[3] or ''), ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return 1
