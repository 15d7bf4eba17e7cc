-- Claim a message for a push. KEYS[1] claim key; ARGV claim id, lease ms, ttl ms, delivery,
-- owner. -> {'new', attempt} | {'done', outcome} | {'busy', state, owner, claim id}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function active(s) return s == 'running' or s == 'deferred' or s == 'external' end

local k = KEYS[1]
local row = redis.call('HMGET', k, 's', 'l', 'a', 'o', 'w', 'c')
local s = row[1]
local attempts = 1
if s then
  if s == 'done' then return {'done', row[4] or ''} end
  if active(s) and tonumber(row[2]) > now then
    redis.call('HSET', k, 'd', ARGV[4])
    return {'busy', s, row[5] or '', row[6] or ''}
  end
  attempts = tonumber(row[3]) + 1
end
redis.call('HSET', k, 's', 'running', 'c', ARGV[1], 'l', now + tonumber(ARGV[2]),
           'd', ARGV[4], 'a', attempts, 'w', ARGV[5])
redis.call('PEXPIRE', k, math.max(tonumber(ARGV[3]), tonumber(ARGV[2])))
return {'new', attempts}
