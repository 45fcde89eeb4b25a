-- KEYS[1] index. ARGV: 1 session key prefix, 2 most to read.
-- Returns sid, dvt, did, created, refreshed, pf, app, dn for each live
-- session, of the ARGV[2] used most recently (latest expiry): the work is
-- bounded by ARGV[2], however many sessions the index holds. (A session
-- idle too long has left the index's live range.)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sids = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, sid in ipairs(sids) do
  local h = redis.call('HMGET', ARGV[1] .. sid, 'dvt', 'did', 'created', 'refreshed', 'state',
    'pf', 'app', 'dn')
  if h[1] and h[5] == 'live' then
    out[#out + 1] = sid
    out[#out + 1] = h[1]
    out[#out + 1] = h[2] or ''
    out[#out + 1] = h[3] or '0'
    out[#out + 1] = h[4] or '0'
    out[#out + 1] = h[6] or ''
    out[#out + 1] = h[7] or ''
    out[#out + 1] = h[8] or ''
  end
end
return out
