/**
 * The cluster's Redis layout and the Lua scripts that change it atomically.
 *
 *   <name>:lease:<node>          a node's lease (PX presenceTtlMs); alive while it exists
 *   <name>:nodes                 set of registered nodes, swept for expired leases
 *   <name>:p:<endpoint>:<user>   presence: JSON {n: node, c: connection id, s: since}
 *   <name>:held:<node>           hash "<endpoint>:<user>" → JSON {c, s, p: params}: what a reaper reports
 *   <name>:reaped:<node>         set when a node was reaped, so it re-announces its users
 *   <name>:node:<node>, <name>:all   pub/sub channels
 *
 * Presence entries carry no TTL of their own: they live exactly as long as
 * the lease of the node named in them, and a dead node's are reaped by a
 * survivor. Endpoint names hold no ':', so a field splits at its first one.
 */

/** KEYS: presence, my held. ARGV: field, presence JSON, held JSON, policy, prefix, my node. → {old, alive, old held entry, claimed} */
export const CLAIM = `
local old = redis.call('GET', KEYS[1])
local alive = 0
local entry = ''
if old then
  local o = cjson.decode(old)
  if o.n ~= ARGV[6] then
    alive = redis.call('EXISTS', ARGV[5] .. 'lease:' .. o.n)
    if alive == 1 and ARGV[4] == 'reject' then return {old, 1, '', 0} end
    local held = ARGV[5] .. 'held:' .. o.n
    local h = redis.call('HGET', held, ARGV[1])
    if h and cjson.decode(h).c == o.c then
      entry = h
      -- a dead node's entry is ours to report now, not the reaper's
      if alive == 0 then redis.call('HDEL', held, ARGV[1]) end
    end
  end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return {old or '', alive, entry, 1}
`

/**
 * KEYS: presence, my held. ARGV: field, connection id[, holder presence JSON,
 * holder held JSON]. Forgets the connection only where it is still the one
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
 * ARGV: prefix, dead node, my node. Takes over every entry of the dead node
 * still current (as a tombstone connection "reap:<id>" of mine, so a claim
 * meanwhile waits for my report), marks the node reaped, and returns
 * {field, held JSON, ...}.
 */
export const REAP = `
local held = ARGV[1] .. 'held:' .. ARGV[2]
local mine = ARGV[1] .. 'held:' .. ARGV[3]
local entries = redis.call('HGETALL', held)
local out = {}
for i = 1, #entries, 2 do
  local field, value = entries[i], entries[i + 1]
  local e = cjson.decode(value)
  local pkey = ARGV[1] .. 'p:' .. field
  local cur = redis.call('GET', pkey)
  if cur and cjson.decode(cur).c == e.c then
    local tomb = 'reap:' .. e.c
    redis.call('SET', pkey, cjson.encode({n = ARGV[3], c = tomb, s = e.s}))
    redis.call('HSET', mine, field, cjson.encode({c = tomb, s = e.s, p = e.p}))
    table.insert(out, field)
    table.insert(out, value)
  end
end
redis.call('DEL', held)
redis.call('SET', ARGV[1] .. 'reaped:' .. ARGV[2], '1', 'EX', 86400)
return out
`

/**
 * Registers a connection again after the broker was away. KEYS: presence, my
 * held. ARGV: field, presence JSON, held JSON, policy, prefix, my node,
 * connection id, since. → {'set'|'won'|'lost', other presence, dead node's held entry}
 * A live conflict is settled by the policy: `replace` keeps the newer
 * connection, `reject` the older (ties by id).
 */
export const REASSERT = `
local cur = redis.call('GET', KEYS[1])
local result = 'set'
local other = ''
local entry = ''
if cur then
  local o = cjson.decode(cur)
  if o.c ~= ARGV[7] and o.c ~= 'reap:' .. ARGV[7] and o.n ~= ARGV[6] then
    if redis.call('EXISTS', ARGV[5] .. 'lease:' .. o.n) == 1 then
      local mine = tonumber(ARGV[8])
      local newer = mine > o.s or (mine == o.s and ARGV[7] > o.c)
      if (ARGV[4] == 'replace') ~= newer then return {'lost', cur, ''} end
      result = 'won'
      other = cur
    else
      local held = ARGV[5] .. 'held:' .. o.n
      local h = redis.call('HGET', held, ARGV[1])
      if h and cjson.decode(h).c == o.c then
        entry = h
        redis.call('HDEL', held, ARGV[1])
      end
    end
  end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return {result, other, entry}
`
