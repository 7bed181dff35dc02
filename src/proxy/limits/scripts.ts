/**
 * The Lua scripts behind the shared limits (src/proxy/limits/redis-limits.ts). Redis runs each
 * one atomically, so a check and its increment cannot interleave with another proxy's.
 *
 * Keys, under a prefix (default `jitgate:limits:`):
 * - `g:<grant id>`, a hash: `t`, `a` — the rate bucket's tokens and when they were computed
 *   (the proxies' clock, epoch ms; never moved back); `r` — calls admitted over the grant's life,
 *   `b` — response bytes counted, `s` — set once `r` and `b` were seeded from PostgreSQL in this
 *   epoch; `cr`, `cb` — reservations proxies re-registered before the seed (see below).
 * - `epoch`: `<id>:<ready at, Redis ms>`. Created by whoever finds it missing: on first use,
 *   and after Redis lost its data (FLUSHALL, a restart without persistence, an eviction). Until
 *   `ready at` quota calls are not admitted against the shared count; in that window every live
 *   proxy sees the new epoch (heartbeat) and re-registers what it admitted that PostgreSQL has
 *   not committed yet (`cr`, `cb`). After it, a grant's first call finds `s` unset and the proxy
 *   seeds `r`, `b` from a fresh read of the grant's row plus those registrations.
 * - `proxies`: a sorted set, one heartbeat entry per proxy process, scored with Redis's clock;
 *   entries older than the heartbeat TTL are dropped, so its size is the live proxy count.
 *
 * Replies are arrays whose first element is a code; `5` always means "your epoch is not the
 * current one" and carries the current epoch ('' when there is none).
 */

/** Reads the epoch, creating it (ready `ARGV[recovery]` ms from now) when it is missing. */
const EPOCH_OF = (epochKey: string, proxyIdArg: string, recoveryArg: string) => `
local clock = redis.call('TIME')
local redisNow = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local epoch = redis.call('GET', ${epochKey})
if not epoch then
  epoch = ${proxyIdArg} .. '-' .. clock[1] .. clock[2] .. ':' .. (redisNow + tonumber(${recoveryArg}))
  redis.call('SET', ${epochKey}, epoch)
end`;

/**
 * One call: KEYS grant, epoch; ARGV now, capacity, period ms, quota requests (-1: none),
 * quota bytes (-1: none), caller's epoch, key TTL ms, proxy id, recovery ms.
 * Replies: {0} admitted (and reserved, with a quota) · {1, retry ms} rate limited · {2} quota
 * used up · {3} admitted by the rate limit, quota not confirmable yet (recovering) · {4} seed
 * first · {5, epoch}. A refusal by the quota still spends the call's rate token, as without Redis.
 */
export const ADMIT = `
local grant = KEYS[1]
local now = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
-- Tokens per ms, computed as src/proxy/rate-limit.ts does, so both decide alike.
local perMs = capacity / tonumber(ARGV[3])
local quotaRequests = tonumber(ARGV[4])
local quotaBytes = tonumber(ARGV[5])
local quota = quotaRequests >= 0 or quotaBytes >= 0
local recovering = false
if quota then
  ${EPOCH_OF('KEYS[2]', 'ARGV[8]', 'ARGV[9]')}
  if epoch ~= ARGV[6] then return {5, epoch} end
  recovering = redisNow < tonumber(string.sub(epoch, string.find(epoch, ':', 1, true) + 1))
  if not recovering and redis.call('HEXISTS', grant, 's') == 0 then return {4} end
end
local state = redis.call('HMGET', grant, 't', 'a', 'r', 'b')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
else
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(capacity, tokens + elapsed * perMs)
  if now > at then at = now end
end
if tokens < 1 then return {1, math.ceil((1 - tokens) / perMs)} end
redis.call('HSET', grant, 't', tokens - 1, 'a', at)
redis.call('PEXPIRE', grant, ARGV[7])
if not quota then return {0} end
if recovering then return {3} end
if (quotaRequests >= 0 and tonumber(state[3] or '0') >= quotaRequests)
  or (quotaBytes >= 0 and tonumber(state[4] or '0') >= quotaBytes) then
  return {2}
end
redis.call('HINCRBY', grant, 'r', 1)
return {0}
`;

/**
 * Seeds a grant's counts: KEYS grant, epoch; ARGV caller's epoch, committed requests and bytes
 * (read from PostgreSQL just before), key TTL ms. The re-registered reservations are added;
 * a grant already seeded in this epoch is left alone. Replies {0} or {5, epoch}.
 */
export const SEED = `
local epoch = redis.call('GET', KEYS[2])
if epoch ~= ARGV[1] then return {5, epoch or ''} end
if redis.call('HEXISTS', KEYS[1], 's') == 1 then return {0} end
local carried = redis.call('HMGET', KEYS[1], 'cr', 'cb')
redis.call('HSET', KEYS[1], 's', 1,
  'r', tonumber(ARGV[2]) + tonumber(carried[1] or '0'),
  'b', tonumber(ARGV[3]) + tonumber(carried[2] or '0'))
redis.call('HDEL', KEYS[1], 'cr', 'cb')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {0}
`;

/**
 * Adds what a proxy counted without the round trip of a call: KEYS epoch, then one key per
 * grant; ARGV caller's epoch, TTL ms for keys that have none, then per grant: calls, bytes,
 * committed calls, committed bytes. Bytes sent (batched), calls admitted while Redis was out of
 * reach (`local` mode), and — after an epoch change — every reservation not yet committed. A
 * seeded grant adds them to `r`, `b`, never below what PostgreSQL committed; an unseeded one
 * keeps them for its seed. Replies {0} or {5, epoch}.
 */
export const ADD = `
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then return {5, epoch or ''} end
for i = 2, #KEYS do
  local grant = KEYS[i]
  local o = 3 + (i - 2) * 4
  local calls = tonumber(ARGV[o])
  local bytes = tonumber(ARGV[o + 1])
  if redis.call('HEXISTS', grant, 's') == 1 then
    if redis.call('HINCRBY', grant, 'r', calls) < tonumber(ARGV[o + 2]) then
      redis.call('HSET', grant, 'r', ARGV[o + 2])
    end
    if redis.call('HINCRBY', grant, 'b', bytes) < tonumber(ARGV[o + 3]) then
      redis.call('HSET', grant, 'b', ARGV[o + 3])
    end
  else
    if calls > 0 then redis.call('HINCRBY', grant, 'cr', calls) end
    if bytes > 0 then redis.call('HINCRBY', grant, 'cb', bytes) end
  end
  if redis.call('PTTL', grant) == -1 then redis.call('PEXPIRE', grant, ARGV[2]) end
end
return {0}
`;

/**
 * A proxy's heartbeat: KEYS proxies, epoch; ARGV proxy id, heartbeat TTL ms, recovery ms.
 * Replies {live proxies, epoch}.
 */
export const HEARTBEAT = `
${EPOCH_OF('KEYS[2]', 'ARGV[1]', 'ARGV[3]')}
redis.call('ZADD', KEYS[1], redisNow, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', redisNow - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {redis.call('ZCARD', KEYS[1]), epoch}
`;
