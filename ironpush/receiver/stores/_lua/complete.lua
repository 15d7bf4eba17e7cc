-- Mark messages handled, a batch of calls (_each.lua, put in front of this script). A call is
-- a handler's answer (complete), the same only if not handled yet (complete_once), or a
-- deferred job's end with the ack of its newest delivery (complete_ack: the completion is
-- recorded before, and with, its ack: never one without the other).
-- KEYS[1] outbox set, then two per call: claim key, item hash ('' when the call queues no ack).
-- ARGV eight per call: outcome, ttl ms, once (1: a handled message changes nothing), then for
-- an ack ('' otherwise): item id, queue, delivery (the job's: queued when the claim kept no
-- newer one), created, next.
-- -> per call {0} when once and handled already, else {1, the newest delivery of an active
--    claim or false}; {'err', message}
local now = false
local function complete(k, item, a)
  local row = redis.call('HMGET', k, 's', 'd', 'a')
  local s = row[1]
  if ARGV[a + 3] == '1' and s == 'done' then return {0} end
  local newest = false
  if s == 'running' or s == 'deferred' or s == 'external' then newest = row[2] end
  redis.call('DEL', k)
  redis.call('HSET', k, 's', 'done', 'o', ARGV[a + 1], 'a', row[3] or 1)
  redis.call('PEXPIRE', k, tonumber(ARGV[a + 2]))
  -- the same item id again (a try whose answer was lost) queues nothing more
  if item ~= '' and redis.call('EXISTS', item) == 0 then
    if not now then
      local t = redis.call('TIME')
      now = tonumber(t[1]) + tonumber(t[2]) / 1000000
    end
    redis.call('HSET', item, 'k', 'ack', 'q', ARGV[a + 5], 'p', newest or ARGV[a + 6], 'a', 0,
               'c', ARGV[a + 7], 'n', ARGV[a + 8])
    local score = math.max(tonumber(ARGV[a + 8]), math.min(tonumber(ARGV[a + 7]), now))
    redis.call('ZADD', KEYS[1], score, ARGV[a + 4])
  end
  return {1, newest}
end

return each((#KEYS - 1) / 2, function(i)
  return complete(KEYS[2 * i], KEYS[2 * i + 1], (i - 1) * 8)
end)
