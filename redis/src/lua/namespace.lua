-- The preamble of every script that writes a namespace (async-memo-redis: src/scripts.rs).
-- KEYS[1]: the namespace's generation. KEYS[2]: the run_id it was last bumped for. KEYS[3]:
-- the invalidation log (a stream). ARGV[1]: the log's MAXLEN ~; ARGV[2]: the writer's origin;
-- ARGV[3]: its clock in microseconds. The shared tier's value and lease keys carry the
-- generation, so bumping it revokes every lease and hides every value of the namespace at once.
if redis.REDIS_VERSION_NUM == nil or redis.REDIS_VERSION_NUM < 0x070000 then
  return redis.error_reply('async-memo-redis needs Redis 7.0 or later (XINFO entries-added)')
end

-- The generation, bumped once for each server incarnation: a restarted server, or a promoted
-- replica, holds at best a prefix of the history, so it may lack invalidations that deleted
-- values and leases it still holds. Nothing stored before it came up is served, and no lease
-- granted before it may store.
-- A missing generation (a new namespace, or the key evicted or deleted) starts at the server's
-- clock in nanoseconds, as text: above every generation used before unless more than one
-- invalidate-all a nanosecond ran since (INCR works on it: it fits in 64 bits until 2262).
local function generation()
  local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
  if redis.call('EXISTS', KEYS[1]) == 0 then
    local now = redis.call('TIME')
    redis.call('SET', KEYS[1], now[1] .. string.format('%06d', tonumber(now[2])) .. '000')
    redis.call('SET', KEYS[2], run_id)
  elseif redis.call('GET', KEYS[2]) ~= run_id then
    redis.call('INCR', KEYS[1])
    redis.call('SET', KEYS[2], run_id)
  end
  return redis.call('GET', KEYS[1])
end

-- A key's value and lease share the hash tag {k:<key>}: one Cluster slot.
local function value_key(g, key)
  return 'async-memo:v:{k:' .. key .. '}:' .. g .. ':' .. KEYS[3]
end

local function lease_key(g, key)
  return 'async-memo:l:{k:' .. key .. '}:' .. g .. ':' .. KEYS[3]
end

local function append(fields)
  return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
end

-- A waiter was seen (fetch marked the lease): tell the waiting processes' readers.
local function wake_if_waited(lkey, key)
  if redis.call('HGET', lkey, 'w') then
    append({'w', key, 'o', ARGV[2], 't', ARGV[3]})
  end
end
