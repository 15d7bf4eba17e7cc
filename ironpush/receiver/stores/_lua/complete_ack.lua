-- A deferred job's end in one step: complete.lua, then add.lua for the ack of the newest
-- delivery (the completion is recorded before, and with, its ack: never one without the other).
-- KEYS[1] claim key, KEYS[2] outbox set, KEYS[3] item hash; ARGV outcome, ttl ms, item id,
-- queue, delivery (the job's: queued when the claim kept no newer one), created, next
-- -> the newest delivery of an active claim, or false
local k = KEYS[1]
local row = redis.call('HMGET', k, 's', 'd', 'a')
local s = row[1]
local newest = false
if s == 'running' or s == 'deferred' or s == 'external' then newest = row[2] end
redis.call('DEL', k)
redis.call('HSET', k, 's', 'done', 'o', ARGV[1], 'a', row[3] or 1)
redis.call('PEXPIRE', k, tonumber(ARGV[2]))
-- the same item id again (a try whose answer was lost) queues nothing more
if redis.call('EXISTS', KEYS[3]) == 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  redis.call('HSET', KEYS[3], 'k', 'ack', 'q', ARGV[4], 'p', newest or ARGV[5], 'a', 0,
             'c', ARGV[6], 'n', ARGV[7])
  local score = math.max(tonumber(ARGV[7]), math.min(tonumber(ARGV[6]), now))
  redis.call('ZADD', KEYS[2], score, ARGV[3])
end
return newest
