-- The lease holder gives its lease back without a value (its load failed, was cancelled, or
-- its value cannot be shared). ARGV[4]: the key; ARGV[5]: the token; ARGV[6]: the generation.
-- Returns 1 if the lease was still the caller's, 0 otherwise. Waiters are woken, and one of
-- them takes the lease over.
local g = generation()
local lkey = lease_key(g, ARGV[4])
if g ~= ARGV[6] or redis.call('HGET', lkey, 't') ~= ARGV[5] then
  return 0
end
wake_if_waited(lkey, ARGV[4])
redis.call('DEL', lkey)
return 1
