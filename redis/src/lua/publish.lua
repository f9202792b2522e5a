-- Publishes an invalidation. ARGV[4]: 'k' (one key, ARGV[5]) or 'all'. One key: deletes its
-- shared value and lease (revoking the lease: its holder's store will be refused) and appends
-- the record. All: bumps the generation (revoking every lease, hiding every value) and appends.
-- Returns the record's id.
local g = generation()
if ARGV[4] == 'all' then
  redis.call('INCR', KEYS[1])
  return append({'all', 1, 'o', ARGV[2], 't', ARGV[3]})
end
redis.call('DEL', value_key(g, ARGV[5]), lease_key(g, ARGV[5]))
return append({'k', ARGV[5], 'o', ARGV[2], 't', ARGV[3]})
