-- The owner's heartbeat: extend the leases of running and deferred claims (external claims
-- keep their own, long, lease). KEYS claim keys; ARGV[1] lease ms, ARGV[1 + i] the claim id
-- expected at KEYS[i].
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i, k in ipairs(KEYS) do
  local row = redis.call('HMGET', k, 's', 'c')
  if (row[1] == 'running' or row[1] == 'deferred') and row[2] == ARGV[i + 1] then
    redis.call('HSET', k, 'l', now + lease)
    if redis.call('PTTL', k) < lease then redis.call('PEXPIRE', k, lease) end
  end
end
return 0
