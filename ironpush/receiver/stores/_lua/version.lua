-- KEYS[1] version key; ARGV[1] our version -> the stored version (set when absent)
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
