-- Keep an outbox item. KEYS[1] outbox set, KEYS[2] item hash; ARGV id, kind, queue, payload,
-- attempts, created, next. Due items are scored by creation time (never later than now), so
-- they keep FIFO order.
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('HSET', KEYS[2], 'k', ARGV[2], 'q', ARGV[3], 'p', ARGV[4], 'a', ARGV[5],
           'c', ARGV[6], 'n', ARGV[7])
local score = math.max(tonumber(ARGV[7]), math.min(tonumber(ARGV[6]), now))
redis.call('ZADD', KEYS[1], score, ARGV[1])
return 1
