-- KEYS[1] session. ARGV: 1 field (`ph` phone number, `sk` platform session
-- key), 2 its value. Returns 1, or 0 if not live.
if redis.call('HGET', KEYS[1], 'state') ~= 'live' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
