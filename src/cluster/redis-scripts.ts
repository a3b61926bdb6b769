/**
 * The cluster's Redis layout and the Lua scripts that change it atomically.
 *
 *   <name>:lease:<node>          a node's lease (PX presenceTtlMs); alive while it exists
 *   <name>:nodes                 set of registered nodes, swept for expired leases
 *   <name>:p:<endpoint>:<user>   presence: JSON {n: node, c: connection id, s: since}
 *   <name>:held:<node>           a node's records: hash "<endpoint>:<user>" → JSON {c, s, p: params}, what a reaper reports
 *   <name>:reaped:<node>         set when a node was reaped, so it re-announces its users
 *   <name>:node:<node>, <name>:all   pub/sub channels
 *
 * Presence entries carry no TTL of their own: they live exactly as long as
 * the lease of the node named in them, and a dead node's are reaped by a
 * survivor. Endpoint names hold no ':', so a field splits at its first one.
 *
 * Every key a script touches comes in KEYS, as Redis requires (and Redis
 * Cluster needs, to route the call). Which node's lease and records a claim
 * touches depends on the presence it finds, so the caller reads the
 * presence first and names that node; a script that finds another node
 * there by then changes nothing and returns nil, and the caller reads again.
 * Run through ioredis `defineCommand` (EVALSHA, EVAL after a NOSCRIPT).
 */

/**
 * KEYS: presence, my records, old node's lease, old node's records (mine when
 * there is no old presence). ARGV: field, presence JSON, record JSON, policy,
 * my node, old node ('' for none). → {old, alive, old record, claimed},
 * or nil when the presence names another old node by now.
 */
export const CLAIM = `
local old = redis.call('GET', KEYS[1])
local o = old and cjson.decode(old)
if (o and o.n or '') ~= ARGV[6] then return nil end
local alive = 0
local entry = ''
if o and o.n ~= ARGV[5] then
  alive = redis.call('EXISTS', KEYS[3])
  if alive == 1 and ARGV[4] == 'reject' then return {old, 1, '', 0} end
  local h = redis.call('HGET', KEYS[4], ARGV[1])
  if h and cjson.decode(h).c == o.c then
    entry = h
    -- a dead node's entry is ours to report now, not the reaper's
    if alive == 0 then redis.call('HDEL', KEYS[4], ARGV[1]) end
  end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return {old or '', alive, entry, 1}
`

/**
 * KEYS: presence, my records. ARGV: field, connection id[, holder presence JSON,
 * holder record JSON]. Forgets the connection only where it is still the one
 * recorded; with a holder (this node's connection of that user, still
 * live), registers the holder in its place.
 */
export const RELEASE = `
local cur = redis.call('GET', KEYS[1])
if cur and cjson.decode(cur).c == ARGV[2] then
  if ARGV[3] and ARGV[3] ~= '' then
    redis.call('SET', KEYS[1], ARGV[3])
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
    return 1
  end
  redis.call('DEL', KEYS[1])
end
local h = redis.call('HGET', KEYS[2], ARGV[1])
if h and cjson.decode(h).c == ARGV[2] then redis.call('HDEL', KEYS[2], ARGV[1]) end
return 0
`

/**
 * KEYS: dead node's records, my records, dead node's reaped mark, then the
 * presence of each field of the dead node's records. ARGV: my node, then
 * those fields, in the same order. Takes over every entry of the dead node
 * still current (as a tombstone connection "reap:<id>" of mine, so a claim
 * meanwhile waits for my report), marks the node reaped, and returns
 * {field, record JSON, ...}; nil when the hash holds other fields by now.
 */
export const REAP = `
local fields = #ARGV - 1
if redis.call('HLEN', KEYS[1]) ~= fields then return nil end
-- all checked before anything is written: a script's writes are not undone by its return
local values = {}
for i = 1, fields do
  values[i] = redis.call('HGET', KEYS[1], ARGV[i + 1])
  if not values[i] then return nil end
end
local out = {}
for i = 1, fields do
  local field, value = ARGV[i + 1], values[i]
  local e = cjson.decode(value)
  local pkey = KEYS[i + 3]
  local cur = redis.call('GET', pkey)
  if cur and cjson.decode(cur).c == e.c then
    local tomb = 'reap:' .. e.c
    redis.call('SET', pkey, cjson.encode({n = ARGV[1], c = tomb, s = e.s}))
    redis.call('HSET', KEYS[2], field, cjson.encode({c = tomb, s = e.s, p = e.p}))
    table.insert(out, field)
    table.insert(out, value)
  end
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[3], '1', 'EX', 86400)
return out
`

/**
 * Registers a connection again after the broker was away. KEYS: presence,
 * my records, other node's lease, other node's records (mine when there is no
 * other presence). ARGV: field, presence JSON, record JSON, policy, my node,
 * connection id, since, other node ('' for none). → {'set'|'won'|'lost',
 * other presence, dead node's record}, or nil when the presence names
 * another node by now. A live conflict is settled by the policy: `replace`
 * keeps the newer connection, `reject` the older (ties by id).
 */
export const REASSERT = `
local cur = redis.call('GET', KEYS[1])
local o = cur and cjson.decode(cur)
if (o and o.n or '') ~= ARGV[8] then return nil end
local result = 'set'
local other = ''
local entry = ''
if o and o.c ~= ARGV[6] and o.c ~= 'reap:' .. ARGV[6] and o.n ~= ARGV[5] then
  if redis.call('EXISTS', KEYS[3]) == 1 then
    local mine = tonumber(ARGV[7])
    local newer = mine > o.s or (mine == o.s and ARGV[6] > o.c)
    if (ARGV[4] == 'replace') ~= newer then return {'lost', cur, ''} end
    result = 'won'
    other = cur
  else
    local h = redis.call('HGET', KEYS[4], ARGV[1])
    if h and cjson.decode(h).c == o.c then
      entry = h
      redis.call('HDEL', KEYS[4], ARGV[1])
    end
  end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return {result, other, entry}
`
