-- KEYS[1] outbox set -> {count, earliest score or false}
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {redis.call('ZCARD', KEYS[1]), first[2] or false}
