-- KEYS[1] session. ARGV: 1 phone number. Returns 1, or 0 if not live.
if redis.call('HGET', KEYS[1], 'state') ~= 'live' then return 0 end
redis.call('HSET', KEYS[1], 'ph', ARGV[1])
return 1
