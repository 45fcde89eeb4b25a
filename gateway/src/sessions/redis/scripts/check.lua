-- Before a refresh asks the user service: is the presented token
-- redeemable, and may the session refresh again so soon?
-- KEYS[1] index, KEYS[2] session, KEYS[3] ceiling set.
-- ARGV: 1 sid, 2 presented jti, 3 ttl ms, 4 grace ms, 5 class key prefix,
-- 6 refreshes per window, 7 window ms, 8 idle ms (0 none).
-- Returns {0} unknown, {1, why} revoked (why '' from an older gateway;
-- 'idle' when it ends here, idle too long), {2} live (counted), {3} reused
-- (and now revoked), {4, ms to wait} too soon.
--
-- The session's field `rl` holds the times (ms) of its refreshes within
-- the window, oldest first, at most ARGV[6] of them.
local h = redis.call('HMGET', KEYS[2], 'state', 'jti', 'prev', 'prev_at', 'dvt', 'rl', 'why',
  'refreshed')
if not h[1] then return {0} end
if h[1] == 'revoked' then return {1, h[7] or ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
if idle(h[8], tonumber(ARGV[8]), now) then
  ended(KEYS[2], ARGV[1], ARGV[5] .. (h[5] or ''), KEYS[3], 'idle')
  return {1, 'idle'}
end
if redeemable(h, ARGV[2], tonumber(ARGV[4]), now) == nil then
  reused(ARGV[1], ARGV[5] .. (h[5] or ''), ttl)
  return {3}
end
local most = tonumber(ARGV[6])
local window = tonumber(ARGV[7])
local recent = {}
for at in string.gmatch(h[6] or '', '%d+') do
  if now - tonumber(at) < window then recent[#recent + 1] = at end
end
if #recent >= most then
  return {4, tonumber(recent[#recent - most + 1]) + window - now}
end
recent[#recent + 1] = tostring(now)
redis.call('HSET', KEYS[2], 'rl', table.concat(recent, ' '))
return {2}
