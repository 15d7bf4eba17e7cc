-- Lease due outbox items. KEYS[1] outbox set; ARGV limit, lease s, item key prefix
-- -> flat list of id and fields
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', ARGV[3] .. id, 'k', 'q', 'p', 'a', 'c', 'n')
  if f[1] then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
    table.insert(out, id)
    for _, v in ipairs(f) do table.insert(out, v) end
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
