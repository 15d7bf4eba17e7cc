-- A dead local owner's active claim, taken over only if it is still the one we saw.
-- KEYS[1] claim key; ARGV old claim id, new claim id, lease ms, ttl ms, delivery, owner.
-- -> the attempt number, or false
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function active(s) return s == 'running' or s == 'deferred' or s == 'external' end

local k = KEYS[1]
local row = redis.call('HMGET', k, 's', 'c', 'a')
if not active(row[1]) or row[2] ~= ARGV[1] then return false end
local attempts = tonumber(row[3]) + 1
redis.call('HSET', k, 's', 'running', 'c', ARGV[2], 'l', now + tonumber(ARGV[3]),
           'd', ARGV[5], 'a', attempts, 'w', ARGV[6])
redis.call('PEXPIRE', k, math.max(tonumber(ARGV[4]), tonumber(ARGV[3])))
return attempts
