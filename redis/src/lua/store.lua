-- The lease holder stores its value: only if its token is still the key's lease in the
-- generation it was granted in (compare-and-set). ARGV[4]: the key; ARGV[5]: the token;
-- ARGV[6]: the generation; ARGV[7]: the value's time to live in ms; ARGV[8]: the value.
-- Returns 'stored', or 'revoked' (an invalidation, an invalidate-all, a restart or the
-- lease's expiry came first: the value is stored nowhere).
local g = generation()
local lkey = lease_key(g, ARGV[4])
if g ~= ARGV[6] or redis.call('HGET', lkey, 't') ~= ARGV[5] then
  return 'revoked'
end
local vkey = value_key(g, ARGV[4])
redis.call('HSET', vkey, 't', ARGV[5], 'd', ARGV[8])
redis.call('PEXPIRE', vkey, ARGV[7])
wake_if_waited(lkey, ARGV[4])
redis.call('DEL', lkey)
return 'stored'
