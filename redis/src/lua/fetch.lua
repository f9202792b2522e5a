-- A local miss asks the shared tier. ARGV[4]: the key; ARGV[5]: a fresh lease token, or '' to
-- only look (no lease: answers {'none', g} when there is no value); ARGV[6]: the lease's time
-- to live in ms; ARGV[7]: the token of a value the caller could not decode, or '' (a value
-- stored under that token counts as absent, so that a lease is taken and its holder replaces
-- it). Returns {'value', g, token, bytes}: the shared value and the token it was stored under; {'lease', g}: the caller now holds the key's lease (token
-- ARGV[5]) and must load; {'held', g, pttl}: another process holds it for pttl more ms (the
-- lease is marked, so that its holder announces the store or release in the log).
local g = generation()
local found = redis.call('HMGET', value_key(g, ARGV[4]), 't', 'd')
if found[2] and found[1] ~= ARGV[7] then
  return {'value', g, found[1], found[2]}
end
if ARGV[5] == '' then
  return {'none', g}
end
local lkey = lease_key(g, ARGV[4])
if redis.call('EXISTS', lkey) == 0 then
  redis.call('HSET', lkey, 't', ARGV[5])
  redis.call('PEXPIRE', lkey, ARGV[6])
  return {'lease', g}
end
-- Our own token: this call was sent again after its first answer was lost.
if redis.call('HGET', lkey, 't') == ARGV[5] then
  return {'lease', g}
end
redis.call('HSET', lkey, 'w', 1)
return {'held', g, redis.call('PTTL', lkey)}
