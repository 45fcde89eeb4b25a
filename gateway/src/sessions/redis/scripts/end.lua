-- KEYS[1] index, KEYS[2] ceiling set. ARGV: 1 sid ('' for all), 2 ttl ms,
-- 3 session key prefix, 4 class key prefix; to end all only for a
-- redeemable token: 5 its jti ('' no such condition), 6 grace ms, 7 its
-- session's sid; 8 why they end (a reason's label), 9 idle ms (0 none).
-- Returns {1, sid ended...}, or {0, why}: the token is not redeemable,
-- nothing ended; `why` is why its session ended ('revoked' for a record
-- without one, 'idle' for one idle too long), '' if it has not.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if ARGV[5] ~= '' then
  local h = redis.call('HMGET', ARGV[3] .. ARGV[7], 'state', 'jti', 'prev', 'prev_at', 'refreshed',
    'why')
  if h[1] == 'revoked' then return {0, h[6] or 'revoked'} end
  if h[1] == 'live' and idle(h[5], tonumber(ARGV[9]), now) then return {0, 'idle'} end
  if h[1] ~= 'live' or redeemable(h, ARGV[5], tonumber(ARGV[6]), now) == nil then
    return {0, ''}
  end
end
local sids
if ARGV[1] ~= '' then
  local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not exp or tonumber(exp) <= now then return {1} end
  sids = {ARGV[1]}
else
  sids = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
end
local out = {1}
for _, sid in ipairs(sids) do
  local h = ARGV[3] .. sid
  local dvt = redis.call('HGET', h, 'dvt')
  if dvt then
    redis.call('ZREM', ARGV[4] .. dvt, sid)
    redis.call('HSET', h, 'state', 'revoked', 'why', ARGV[8])
    redis.call('PEXPIRE', h, ttl)
  end
  redis.call('ZREM', KEYS[1], sid)
  redis.call('ZREM', KEYS[2], sid)
  out[#out + 1] = sid
end
return out
