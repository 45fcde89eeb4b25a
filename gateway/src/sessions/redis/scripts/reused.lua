-- Revokes the session of KEYS[2] (a token already used): out of the
-- index (KEYS[1]), its class's set and the ceiling set (KEYS[3]), its
-- record kept the refresh TTL to tell why ('reused').
local function reused(sid, class, ttl)
  redis.call('HSET', KEYS[2], 'state', 'revoked', 'why', 'reused')
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('ZREM', KEYS[1], sid)
  redis.call('ZREM', class, sid)
  redis.call('ZREM', KEYS[3], sid)
end
