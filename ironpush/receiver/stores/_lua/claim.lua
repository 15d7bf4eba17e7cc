-- Claim messages for pushes, a batch of calls (_each.lua, put in front of this script).
-- KEYS[i] claim key of call i; ARGV five per call: claim id, lease ms, ttl ms, delivery, owner.
-- -> per call {'new', attempt} | {'done', outcome} | {'busy', state, owner, claim id}
--    | {'err', message}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function active(s) return s == 'running' or s == 'deferred' or s == 'external' end

local function claim(k, id, lease, ttl, delivery, owner)
  local row = redis.call('HMGET', k, 's', 'l', 'a', 'o', 'w', 'c')
  local s = row[1]
  local attempts = 1
  if s then
    if s == 'done' then return {'done', row[4] or ''} end
    if active(s) and tonumber(row[2]) > now then
      redis.call('HSET', k, 'd', delivery)
      return {'busy', s, row[5] or '', row[6] or ''}
    end
    attempts = tonumber(row[3]) + 1
  end
  redis.call('HSET', k, 's', 'running', 'c', id, 'l', now + tonumber(lease), 'd', delivery,
             'a', attempts, 'w', owner)
  redis.call('PEXPIRE', k, math.max(tonumber(ttl), tonumber(lease)))
  return {'new', attempts}
end

return each(#KEYS, function(i)
  local a = (i - 1) * 5
  return claim(KEYS[i], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
end)
