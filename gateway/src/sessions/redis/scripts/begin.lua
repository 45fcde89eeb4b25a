-- KEYS[1] index, KEYS[2] class set, KEYS[3] session, KEYS[4] the user's
-- ceiling set.
-- ARGV: 1 sid, 2 jti, 3 class, 4 device id ('' none), 5 ttl ms, 6 limit
-- (0 none), 7 '1' to refuse, 8 session key prefix, 9 platform session key
-- ('' none), 10 ceiling (0 none), 11 class key prefix, 12 platform, 13
-- appid, 14 device name ('' none), 15 idle ms (0 none), 16 openid (kept
-- with the platform session key).
-- Returns {0} refused, or {1, evicted sid...}.
--
-- Sessions it ends are 'replaced'. Expired (or idle) sessions leave the
-- index here (at most 1024 a call) and leave a limited class's set, or the
-- ceiling set, when that set is counted: each holds only what its limit
-- allows plus what ended since, so it is small.
-- Every time here is the server's: one user's keys are on one server, so
-- logins and refreshes from replicas with skewed clocks still agree, and
-- logins order by the microsecond.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local created = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[5])
local limit = tonumber(ARGV[6])
local max = tonumber(ARGV[10])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1024)
for _, sid in ipairs(gone) do
  redis.call('ZREM', KEYS[1], sid)
end
-- Drops the entries of a counted set that are no longer live; its size.
local function live(set)
  for _, sid in ipairs(redis.call('ZRANGE', set, 0, -1)) do
    local exp = redis.call('ZSCORE', KEYS[1], sid)
    if not exp or tonumber(exp) <= now then redis.call('ZREM', set, sid) end
  end
  return redis.call('ZCARD', set)
end
-- Ends one session: out of every set, its record revoked.
local function revoke(sid)
  redis.call('ZREM', KEYS[1], sid)
  redis.call('ZREM', KEYS[4], sid)
  local h = ARGV[8] .. sid
  local dvt = redis.call('HGET', h, 'dvt')
  if dvt then
    redis.call('ZREM', ARGV[11] .. dvt, sid)
    redis.call('HSET', h, 'state', 'revoked', 'why', 'replaced')
    redis.call('PEXPIRE', h, ttl)
  end
end
local out = {1}
-- Both limits are checked before anything ends, so a refused login
-- changes nothing.
local in_class = 0
local in_all = 0
if limit > 0 then in_class = live(KEYS[2]) end
if max > 0 then in_all = live(KEYS[4]) end
if ARGV[7] == '1' and ((limit > 0 and in_class >= limit) or (max > 0 and in_all >= max)) then
  return {0}
end
if limit > 0 and in_class >= limit then
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, in_class - limit)) do
    revoke(sid)
    out[#out + 1] = sid
  end
end
if max > 0 then
  local n = redis.call('ZCARD', KEYS[4])
  if n >= max then
    for _, sid in ipairs(redis.call('ZRANGE', KEYS[4], 0, n - max)) do
      revoke(sid)
      out[#out + 1] = sid
    end
  end
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'jti', ARGV[2], 'state', 'live', 'dvt', ARGV[3], 'did', ARGV[4],
  'created', created, 'refreshed', now, 'pf', ARGV[12], 'app', ARGV[13])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[3], 'sk', ARGV[9], 'oid', ARGV[16]) end
if ARGV[14] ~= '' then redis.call('HSET', KEYS[3], 'dn', ARGV[14]) end
redis.call('PEXPIRE', KEYS[3], ttl)
redis.call('ZADD', KEYS[1], now + live_ms(ttl, tonumber(ARGV[15])), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
if limit > 0 then
  redis.call('ZADD', KEYS[2], created, ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ttl)
end
if max > 0 then
  redis.call('ZADD', KEYS[4], created, ARGV[1])
  redis.call('PEXPIRE', KEYS[4], ttl)
end
return out
