-- Functions of the scripts below, on a session's hash: `live_ms`, how long
-- a session begun or refreshed now stays live (the refresh TTL `ttl`, or
-- `idle` when it is shorter; 0: no idle timeout); `idle`, whether a
-- session last refreshed at `refreshed` (ms) has been idle for `idle` ms
-- by `now`.
local function live_ms(ttl, idle)
  if idle > 0 and idle < ttl then return idle end
  return ttl
end
local function idle(refreshed, limit, now)
  return limit > 0 and refreshed ~= nil and refreshed ~= false
    and now - tonumber(refreshed) >= limit
end
-- Ends the session of hash `h` (its sid `sid`, class set `class`), for
-- `why`, out of the index (KEYS[1]), its class's set and the ceiling set
-- (`all`); its record keeps its expiry (the refresh TTL past its last
-- refresh: while its refresh tokens could still verify, to tell why).
local function ended(h, sid, class, all, why)
  redis.call('HSET', h, 'state', 'revoked', 'why', why)
  redis.call('ZREM', KEYS[1], sid)
  redis.call('ZREM', class, sid)
  redis.call('ZREM', all, sid)
end
