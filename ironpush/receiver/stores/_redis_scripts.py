"""The Lua scripts of :class:`~ironpush.receiver.stores._redis.RedisStore`: one per decision.

Each runs atomically inside Redis (one ``EVALSHA``, one round trip). Times come from the Redis
server's ``TIME``, so hosts whose clocks differ still agree on whose lease ran out.

A claim is a hash ``{prefix}:c:{len(message id)}:{message id}:{subscriber}`` with fields
``s`` state, ``c`` claim id, ``l`` lease until (ms), ``d`` newest delivery, ``a`` attempts,
``o`` outcome, ``w`` owner; its key expires after the ``ttl`` (never before the lease). The
outbox is a sorted set ``{prefix}:ob`` of item ids scored by when each can be taken (due
time, or lease end), plus one hash ``{prefix}:ob:{id}`` per item.
"""

from __future__ import annotations

__all__ = ["SCRIPTS"]

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_KEEP = """
local function keep(k, ms)
  if redis.call('PTTL', k) < ms then redis.call('PEXPIRE', k, ms) end
end
"""

_ACTIVE = """
local function active(s) return s == 'running' or s == 'deferred' or s == 'external' end
"""

# KEYS[1] claim key; ARGV claim id, lease ms, ttl ms, delivery, owner.
# -> {'new', attempt} | {'done', outcome} | {'busy', state, owner, claim id}
CLAIM = (
    _NOW_MS
    + _ACTIVE
    + """
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
"""
)

# A dead local owner's active claim, taken over only if it is still the one we saw.
# KEYS[1] claim key; ARGV old claim id, new claim id, lease ms, ttl ms, delivery, owner.
TAKEOVER = (
    _NOW_MS
    + _ACTIVE
    + """
local k = KEYS[1]
local row = redis.call('HMGET', k, 's', 'c', 'a')
if not active(row[1]) or row[2] ~= ARGV[1] then return false end
local attempts = tonumber(row[3]) + 1
redis.call('HSET', k, 's', 'running', 'c', ARGV[2], 'l', now + tonumber(ARGV[3]),
           'd', ARGV[5], 'a', attempts, 'w', ARGV[6])
redis.call('PEXPIRE', k, math.max(tonumber(ARGV[4]), tonumber(ARGV[3])))
return attempts
"""
)

# KEYS[1] claim key; ARGV claim id, state, lease ms -> 1 | 0
HOLD = (
    _NOW_MS
    + _ACTIVE
    + _KEEP
    + """
local k = KEYS[1]
local row = redis.call('HMGET', k, 's', 'c')
if not active(row[1]) or row[2] ~= ARGV[1] then return 0 end
redis.call('HSET', k, 's', ARGV[2], 'l', now + tonumber(ARGV[3]))
keep(k, tonumber(ARGV[3]))
return 1
"""
)

# KEYS claim keys; ARGV[1] lease ms, ARGV[1 + i] the claim id expected at KEYS[i].
RENEW = (
    _NOW_MS
    + _KEEP
    + """
local lease = tonumber(ARGV[1])
for i, k in ipairs(KEYS) do
  local row = redis.call('HMGET', k, 's', 'c')
  if (row[1] == 'running' or row[1] == 'deferred') and row[2] == ARGV[i + 1] then
    redis.call('HSET', k, 'l', now + lease)
    keep(k, lease)
  end
end
return 0
"""
)

# KEYS[1] claim key; ARGV outcome, ttl ms -> the newest delivery of an active claim, or false
COMPLETE = (
    _ACTIVE
    + """
local k = KEYS[1]
local row = redis.call('HMGET', k, 's', 'd', 'a')
local newest = false
if active(row[1]) then newest = row[2] end
redis.call('DEL', k)
redis.call('HSET', k, 's', 'done', 'o', ARGV[1], 'a', row[3] or 1)
redis.call('PEXPIRE', k, tonumber(ARGV[2]))
return newest
"""
)

# KEYS[1] claim key; ARGV claim id ('' = any) -> 1 | 0
RELEASE = (
    _ACTIVE
    + """
local k = KEYS[1]
local row = redis.call('HMGET', k, 's', 'c')
if not active(row[1]) then return 0 end
if ARGV[1] ~= '' and row[2] ~= ARGV[1] then return 0 end
redis.call('HSET', k, 's', 'idle')
redis.call('HDEL', k, 'c', 'l', 'w')
return 1
"""
)

# KEYS[1] claim key -> the newest delivery of an active claim, or false
NEWEST = (
    _ACTIVE
    + """
local row = redis.call('HMGET', KEYS[1], 's', 'd')
if active(row[1]) then return row[2] end
return false
"""
)

# KEYS[1] outbox set, KEYS[2] item hash; ARGV id, kind, queue, payload, attempts, created,
# next. Due items are scored by creation time (never later than now), so they keep FIFO order.
ADD = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('HSET', KEYS[2], 'k', ARGV[2], 'q', ARGV[3], 'p', ARGV[4], 'a', ARGV[5],
           'c', ARGV[6], 'n', ARGV[7])
local score = math.max(tonumber(ARGV[7]), math.min(tonumber(ARGV[6]), now))
redis.call('ZADD', KEYS[1], score, ARGV[1])
return 1
"""

# KEYS[1] outbox set; ARGV limit, lease s, item key prefix -> flat list of id and fields
TAKE = """
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
"""

# KEYS[1] outbox set; ARGV[1] item key prefix, ARGV[2..] ids
FINISH = """
for i = 2, #ARGV do
  redis.call('DEL', ARGV[1] .. ARGV[i])
  redis.call('ZREM', KEYS[1], ARGV[i])
end
return 0
"""

# KEYS[1] outbox set, KEYS[2] item hash; ARGV id, attempts, next
RETRY = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'a', ARGV[2], 'n', ARGV[3])
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]), ARGV[1])
return 1
"""

# KEYS[1] outbox set -> {count, earliest score or false}
STATS = """
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {redis.call('ZCARD', KEYS[1]), first[2] or false}
"""

# KEYS[1] version key; ARGV[1] our version -> the stored version (set when absent)
VERSION = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"""

SCRIPTS = {
    "claim": CLAIM,
    "takeover": TAKEOVER,
    "hold": HOLD,
    "renew": RENEW,
    "complete": COMPLETE,
    "release": RELEASE,
    "newest": NEWEST,
    "add": ADD,
    "take": TAKE,
    "finish": FINISH,
    "retry": RETRY,
    "stats": STATS,
    "version": VERSION,
}
