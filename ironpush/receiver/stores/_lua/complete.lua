-- Mark a message handled: a handler's answer (complete), only if not handled yet
-- (complete_once), or a deferred job's end with the ack of its newest delivery (complete_ack:
-- the completion is recorded before, and with, its ack: never one without the other).
-- KEYS[1] claim key; ARGV outcome, ttl ms, once (1: a handled message changes nothing).
-- complete_ack adds KEYS[2] outbox set, KEYS[3] item hash; ARGV item id, queue, delivery (the
-- job's: queued when the claim kept no newer one), created, next.
-- -> {0} when once and handled already, else {1, the newest delivery of an active claim or false}
local k = KEYS[1]
local row = redis.call('HMGET', k, 's', 'd', 'a')
local s = row[1]
if ARGV[3] == '1' and s == 'done' then return {0} end
local newest = false
if s == 'running' or s == 'deferred' or s == 'external' then newest = row[2] end
redis.call('DEL', k)
redis.call('HSET', k, 's', 'done', 'o', ARGV[1], 'a', row[3] or 1)
redis.call('PEXPIRE', k, tonumber(ARGV[2]))
-- the same item id again (a try whose answer was lost) queues nothing more
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  redis.call('HSET', KEYS[3], 'k', 'ack', 'q', ARGV[5], 'p', newest or ARGV[6], 'a', 0,
             'c', ARGV[7], 'n', ARGV[8])
  local score = math.max(tonumber(ARGV[8]), math.min(tonumber(ARGV[7]), now))
  redis.call('ZADD', KEYS[2], score, ARGV[4])
end
return {1, newest}
