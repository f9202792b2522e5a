-- One atomic read of an invalidation log (async-memo-redis, src/redis_log.rs).
-- KEYS[1]: the stream. ARGV[1]: the cursor's id. ARGV[2]: at most this many records (0: none).
-- Returns {run_id, exists, last-generated-id, entries-added, length, cursor present, records}:
-- the stream's description and the records after the cursor, seen at one instant, so that the
-- gap check (src/gap.rs) compares numbers that belong together.
if redis.REDIS_VERSION_NUM == nil or redis.REDIS_VERSION_NUM < 0x070000 then
  return redis.error_reply('async-memo-redis needs Redis 7.0 or later (XINFO entries-added)')
end
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {run_id, 0}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last, added, length = '0-0', 0, 0
for i = 1, #info, 2 do
  local field = info[i]
  if field == 'last-generated-id' then last = info[i + 1]
  elseif field == 'entries-added' then added = info[i + 1]
  elseif field == 'length' then length = info[i + 1] end
end
local present = 0
if ARGV[1] ~= '0-0' then
  present = #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
end
local records = {}
if tonumber(ARGV[2]) > 0 then
  records = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
end
return {run_id, 1, last, added, length, present, records}
