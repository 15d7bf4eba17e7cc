-- Remove finished outbox items. KEYS[1] outbox set; ARGV[1] item key prefix, ARGV[2..] ids
for i = 2, #ARGV do
  redis.call('DEL', ARGV[1] .. ARGV[i])
  redis.call('ZREM', KEYS[1], ARGV[i])
end
return 0
