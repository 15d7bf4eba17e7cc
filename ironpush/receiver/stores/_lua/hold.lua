-- Switch an owned claim to another active state with a new lease.
-- KEYS[1] claim key; ARGV claim id, state, lease ms -> 1 | 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local k = KEYS[1]
local row = redis.call('HMGET', k, 's', 'c')
local s = row[1]
if not (s == 'running' or s == 'deferred' or s == 'external') or row[2] ~= ARGV[1] then
  return 0
end
local lease = tonumber(ARGV[3])
redis.call('HSET', k, 's', ARGV[2], 'l', now + lease)
-- the key outlives the lease (its ttl may be shorter)
if redis.call('PTTL', k) < lease then redis.call('PEXPIRE', k, lease) end
return 1
