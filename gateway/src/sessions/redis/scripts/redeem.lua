-- KEYS[1] index, KEYS[2] session, KEYS[3] ceiling set.
-- ARGV: 1 sid, 2 presented jti, 3 successor, 4 ttl ms, 5 grace ms, 6 class
-- key prefix, 7 idle ms (0 none).
-- Returns {0} unknown, {1, why} revoked (why '' from an older gateway;
-- 'idle' when it ends here), {2, phone} rotated, {3} reused (and now
-- revoked).
local h = redis.call('HMGET', KEYS[2], 'state', 'jti', 'prev', 'prev_at', 'dvt', 'ph', 'why',
  'refreshed')
if not h[1] then return {0} end
if h[1] == 'revoked' then return {1, h[7] or ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
local class = ARGV[6] .. (h[5] or '')
if idle(h[8], tonumber(ARGV[7]), now) then
  ended(KEYS[2], ARGV[1], class, KEYS[3], 'idle')
  return {1, 'idle'}
end
local in_grace = redeemable(h, ARGV[2], tonumber(ARGV[5]), now)
if in_grace ~= nil then
  if in_grace then
    redis.call('HDEL', KEYS[2], 'prev', 'prev_at')
  else
    redis.call('HSET', KEYS[2], 'prev', ARGV[2], 'prev_at', now)
  end
  redis.call('HSET', KEYS[2], 'jti', ARGV[3], 'refreshed', now)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('ZADD', KEYS[1], now + live_ms(ttl, tonumber(ARGV[7])), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', class, ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
  return {2, h[6] or ''}
end
reused(ARGV[1], class, ttl)
return {3}
