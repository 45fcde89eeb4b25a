-- A new redeemable token for a live session, the current one counting as
-- just redeemed. KEYS[1] index, KEYS[2] session, KEYS[3] ceiling set.
-- ARGV: 1 sid, 2 successor, 3 ttl ms, 4 class key prefix, 5 idle ms (0
-- none). Returns 1, or 0 if not live (a session idle too long ends here).
local h = redis.call('HMGET', KEYS[2], 'state', 'jti', 'dvt', 'refreshed')
if h[1] ~= 'live' then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
if idle(h[4], tonumber(ARGV[5]), now) then
  ended(KEYS[2], ARGV[1], ARGV[4] .. (h[3] or ''), KEYS[3], 'idle')
  return 0
end
redis.call('HSET', KEYS[2], 'prev', h[2], 'prev_at', now, 'jti', ARGV[2], 'refreshed', now)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[1], now + live_ms(ttl, tonumber(ARGV[5])), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', ARGV[4] .. (h[3] or ''), ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return 1
