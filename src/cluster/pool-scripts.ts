/**
 * Backend pools in a cluster (docs/pools.md, "Clusters"): the Redis layout
 * of each pool's shared state and the Lua scripts that change it atomically.
 *
 *   <name>:pool:<endpoint>:a   hash key → member: the key's assignment
 *   <name>:pool:<endpoint>:h   hash key → JSON array of the nodes holding clients of the key
 *   <name>:pool:<endpoint>:l   sorted set key → deadline (ms): keys lingering with no holder
 *   <name>:pool:<endpoint>:d   hash member → JSON {node: down since (ms)}: each node's view of a member down
 *   <name>:pool:<endpoint>:o   set of members out (a failover was decided)
 *   <name>:pool:<endpoint>:m   hash id → JSON {url, weight, exp}: members registered at run time (leases)
 *   <name>:nodes               the cluster's set of live nodes (redis-scripts.ts)
 *
 * Keys and member ids are any strings: they are hash fields and set
 * members, never parts of a key name. Every key a script touches comes in
 * KEYS. Times are Redis's clock (TIME), so nodes' clocks need not agree.
 * Everything read from Redis is treated as possibly malformed: a value that
 * does not decode counts as empty, and is rewritten clean.
 */

/** Lua helpers shared by the scripts: now in ms, a clean list of node ids, a clean {node: number} map. */
const PRELUDE = `
-- appends to out every key of the assignments hash that is on member; returns out
local function keys_on(assignments, member, out)
  local all = redis.call('HGETALL', assignments)
  for i = 1, #all, 2 do
    if all[i + 1] == member then table.insert(out, all[i]) end
  end
  return out
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- a stored JSON value as a table; nil when it is missing, malformed or not an object or array
local function table_of(raw)
  if not raw then return nil end
  local ok, v = pcall(cjson.decode, raw)
  if ok and type(v) == 'table' then return v end
  return nil
end
local function node_list(raw)
  local out = {}
  for _, n in ipairs(table_of(raw) or {}) do if type(n) == 'string' then table.insert(out, n) end end
  return out
end
local function lease_of(raw)
  local l = table_of(raw)
  if not l or type(l.url) ~= 'string' or type(l.href) ~= 'string' then return nil end
  if type(l.weight) ~= 'number' or l.weight <= 0 or type(l.exp) ~= 'number' then return nil end
  return l
end
local function views_of(raw)
  local out = {}
  for n, s in pairs(table_of(raw) or {}) do if type(n) == 'string' and type(s) == 'number' then out[n] = s end end
  return out
end
`

/**
 * KEYS: assignments, holders, lingers. ARGV: key, proposed member, my node.
 * Records this node as a holder, ends any linger, assigns the key to the
 * proposed member unless it has one; returns the key's member.
 */
export const POOL_HOLD = PRELUDE + `
local holders = node_list(redis.call('HGET', KEYS[2], ARGV[1]))
local found = false
for _, n in ipairs(holders) do if n == ARGV[3] then found = true end end
if not found then table.insert(holders, ARGV[3]) end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(holders))
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])
`

/**
 * KEYS: assignments, holders, lingers, nodes. ARGV: key, my node, lingerMs.
 * This node no longer holds the key; when no live node does, the key
 * lingers (or, with lingerMs 0, is unassigned at once). → 1 when nobody holds it.
 */
export const POOL_RELEASE = PRELUDE + `
local live = {}
for _, n in ipairs(node_list(redis.call('HGET', KEYS[2], ARGV[1]))) do
  if n ~= ARGV[2] and redis.call('SISMEMBER', KEYS[4], n) == 1 then table.insert(live, n) end
end
if #live > 0 then
  redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(live))
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
local linger = tonumber(ARGV[3]) or 0
if linger <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
elseif redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[3], now_ms() + linger, ARGV[1])
end
return 1
`

/**
 * KEYS: assignments, holders, lingers, nodes. ARGV: lingerMs. Keys whose
 * holders are all dead nodes (or which have none, and no linger) start
 * their linger; keys whose linger has passed with no holder are
 * unassigned. → the number of keys unassigned.
 */
export const POOL_SWEEP = PRELUDE + `
local now = now_ms()
local linger = tonumber(ARGV[1]) or 0
local keys = redis.call('HKEYS', KEYS[1])
for _, key in ipairs(keys) do
  local live = false
  for _, n in ipairs(node_list(redis.call('HGET', KEYS[2], key))) do
    if redis.call('SISMEMBER', KEYS[4], n) == 1 then live = true end
  end
  if not live then
    redis.call('HDEL', KEYS[2], key)
    if not redis.call('ZSCORE', KEYS[3], key) then redis.call('ZADD', KEYS[3], now + linger, key) end
  end
end
-- holders of keys with no assignment (malformed, or left by a crash) are dropped
for _, key in ipairs(redis.call('HKEYS', KEYS[2])) do
  if redis.call('HEXISTS', KEYS[1], key) == 0 then redis.call('HDEL', KEYS[2], key) end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
local gone = 0
for _, key in ipairs(due) do
  redis.call('ZREM', KEYS[3], key)
  if redis.call('HEXISTS', KEYS[2], key) == 0 then
    gone = gone + redis.call('HDEL', KEYS[1], key)
  end
end
return gone
`

/**
 * KEYS: views, outs, nodes. ARGV: member, my node, 'down' or 'up'. Records
 * this node's view of the member: down since now (kept if already down), or
 * up, which also ends the member's being out. Views of nodes no longer in
 * the node set are dropped (nodes restart under new ids).
 */
export const POOL_SEE = PRELUDE + `
local views = views_of(redis.call('HGET', KEYS[1], ARGV[1]))
for n in pairs(views) do
  if n ~= ARGV[2] and redis.call('SISMEMBER', KEYS[3], n) == 0 then views[n] = nil end
end
if ARGV[3] == 'down' then
  if not views[ARGV[2]] then views[ARGV[2]] = now_ms() end
else
  views[ARGV[2]] = nil
  redis.call('SREM', KEYS[2], ARGV[1])
end
if next(views) == nil then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(views))
end
return 1
`

/**
 * KEYS: views, outs, nodes, assignments. ARGV: member, failoverMs. Decides
 * a failover once for the whole cluster: when a strict majority of the live
 * nodes have seen the member down for failoverMs, the first caller marks it
 * out. → {'won', keys assigned to it...}, {'out'} when it already is, or
 * {'wait'}.
 */
export const POOL_DECIDE = PRELUDE + `
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return {'out'} end
local views = views_of(redis.call('HGET', KEYS[1], ARGV[1]))
local nodes = redis.call('SMEMBERS', KEYS[3])
local now = now_ms()
local after = tonumber(ARGV[2]) or 0
local votes = 0
for _, n in ipairs(nodes) do
  local since = views[n]
  if since and now - since >= after then votes = votes + 1 end
end
if votes * 2 <= #nodes then return {'wait'} end
redis.call('SADD', KEYS[2], ARGV[1])
return keys_on(KEYS[4], ARGV[1], {'won'})
`

/** KEYS: assignments. ARGV: member. → the keys assigned to it. */
export const POOL_KEYS_ON = PRELUDE + `
return keys_on(KEYS[1], ARGV[1], {})
`

/**
 * KEYS: assignments. ARGV: dead member, then key, heir, key, heir... Moves
 * each key still on the dead member to its heir (so two nodes moving the
 * same keys move them once). → the number moved.
 */
export const POOL_MOVE = `
local moved = 0
for i = 2, #ARGV - 1, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    moved = moved + 1
  end
end
return moved
`

/**
 * KEYS: leases. ARGV: id, url, url as compared (parsed href), weight,
 * leaseMs, maxMembers. Registers or renews a run-time member, refusing a
 * new URL for a registered id, a URL another live lease has, and a new
 * member past maxMembers live leases. Leases past their time, or not of
 * the form {url, href, weight > 0, exp}, count as none. → {'created'|'renewed'|'url_changed'|'full'}
 * or {'url_in_use', id of its holder}.
 */
export const POOL_REGISTER = PRELUDE + `
local now = now_ms()
local all = redis.call('HGETALL', KEYS[1])
local live = 0
local mine = nil
local holder = nil
for i = 1, #all, 2 do
  local l = lease_of(all[i + 1])
  if l and l.exp > now then
    if all[i] == ARGV[1] then
      mine = l
    else
      live = live + 1
      if l.href == ARGV[3] then holder = all[i] end
    end
  end
end
if mine and mine.href ~= ARGV[3] then return {'url_changed'} end
if holder then return {'url_in_use', holder} end
if not mine and live >= tonumber(ARGV[6]) then return {'full'} end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({url = ARGV[2], href = ARGV[3], weight = tonumber(ARGV[4]), exp = now + tonumber(ARGV[5])}))
if mine then return {'renewed'} end
return {'created'}
`

/** KEYS: leases. → the ids of leases past their time, or not of the form REGISTER writes. */
export const POOL_EXPIRED = PRELUDE + `
local now = now_ms()
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local l = lease_of(all[i + 1])
  if not l or l.exp <= now then table.insert(out, all[i]) end
end
return out
`

/**
 * KEYS: leases, outs, assignments. ARGV: id, 'delete' or 'expire', then
 * key, heir, key, heir... Ends a run-time member's lease once (with
 * 'expire', only if it is past its time: a renewal meanwhile keeps it),
 * marks it out, and moves each key still on it to its heir. →
 * {'dropped', keys still on it (assigned meanwhile)...}, {'kept'} or {'gone'}.
 */
export const POOL_DROP = PRELUDE + `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'gone'} end
if ARGV[2] == 'expire' then
  local l = lease_of(raw)
  if l and l.exp > now_ms() then return {'kept'} end
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
for i = 3, #ARGV - 1, 2 do
  if redis.call('HGET', KEYS[3], ARGV[i]) == ARGV[1] then redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
end
return keys_on(KEYS[3], ARGV[1], {'dropped'})
`
