-- Mark a message handled. KEYS[1] claim key; ARGV outcome, ttl ms
-- -> the newest delivery of an active claim, or false
local k = KEYS[1]
local row = redis.call('HMGET', k, 's', 'd', 'a')
local s = row[1]
local newest = false
if s == 'running' or s == 'deferred' or s == 'external' then newest = row[2] end
redis.call('DEL', k)
redis.call('HSET', k, 's', 'done', 'o', ARGV[1], 'a', row[3] or 1)
redis.call('PEXPIRE', k, tonumber(ARGV[2]))
return newest
