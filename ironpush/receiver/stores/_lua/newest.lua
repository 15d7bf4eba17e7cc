-- KEYS[1] claim key -> the newest delivery of an active claim, or false
local row = redis.call('HMGET', KEYS[1], 's', 'd')
if row[1] == 'running' or row[1] == 'deferred' or row[1] == 'external' then return row[2] end
return false
