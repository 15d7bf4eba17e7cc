-- Put a failed outbox item back. KEYS[1] outbox set, KEYS[2] item hash; ARGV id, attempts,
-- next
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'a', ARGV[2], 'n', ARGV[3])
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]), ARGV[1])
return 1
