-- Give up an active claim so that the next push runs the handler again.
-- KEYS[1] claim key; ARGV claim id ('' = any) -> 1 | 0
local k = KEYS[1]
local row = redis.call('HMGET', k, 's', 'c')
local s = row[1]
if not (s == 'running' or s == 'deferred' or s == 'external') then return 0 end
if ARGV[1] ~= '' and row[2] ~= ARGV[1] then return 0 end
redis.call('HSET', k, 's', 'idle')
redis.call('HDEL', k, 'c', 'l', 'w')
return 1
