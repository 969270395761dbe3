//! The Lua scripts of the Redis backend.
//!
//! Every write that touches more than one key is one script: Redis runs a script without
//! interleaving any other client's command, which is what makes a batch all-or-nothing and
//! the id check of `APPEND` race-free across server replicas. Each script checks the types of
//! its keys before its first write, because Redis does not roll a script back when a command
//! inside it fails; with the check, the only failures left after the first write are ones
//! Redis itself cannot recover from. (An out-of-memory refusal happens at the first write,
//! before anything changed.)
//!
//! Keys are always passed in `KEYS`, never built inside a script, so ACL key patterns and
//! Redis Cluster slot checks see every key a script touches. Ids are compared as 16-byte
//! strings byte by byte: Lua's own `<` on strings uses the C library's locale collation,
//! which need not be bytewise.

use std::sync::LazyLock;

use ::redis::Script;

/// Shared Lua helpers, prepended to the scripts that need them.
const HELPERS: &str = r#"
local function id_lt(a, b)
  for i = 1, 16 do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return false
end
local function be32(s, at)
  local a, b, c, d = string.byte(s, at, at + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end
local function check_types(keys, kinds)
  for i, k in ipairs(keys) do
    local t = redis.call('TYPE', k)['ok']
    if t ~= 'none' and t ~= kinds[i] then
      return redis.error_reply('NEURALLOG key ' .. k .. ' has type ' .. t .. ', expected ' .. kinds[i])
    end
  end
  return nil
end
local function emptied(meta, logs, name)
  redis.call('HSET', meta, 'count', 0, 'bytes', 0)
  redis.call('HDEL', meta, 'min_ts', 'max_ts')
  redis.call('ZREM', logs, name)
end
"#;

/// Appends one log's share of a group commit.
///
/// `KEYS`: meta, index, blocks, logs, names.
/// `ARGV`: log name, first id, last id (16 bytes each), entry count, event bytes, min ts,
/// max ts, then pairs of (index member, encoded block).
///
/// Returns `{1}` when stored, or `{0, floor}` without writing anything when the log already
/// holds an id >= the first id (another writer got there first); the caller then renumbers
/// the batch above `floor` and tries again.
const APPEND: &str = r#"
local bad = check_types(KEYS, {'hash', 'zset', 'hash', 'zset', 'zset'})
if bad then return bad end
local floor = redis.call('HGET', KEYS[1], 'last')
if floor and not id_lt(floor, ARGV[2]) then
  return {0, floor}
end
for i = 8, #ARGV, 2 do
  redis.call('ZADD', KEYS[2], 0, ARGV[i])
  redis.call('HSET', KEYS[3], string.sub(ARGV[i], 1, 16), ARGV[i + 1])
end
redis.call('HINCRBY', KEYS[1], 'count', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'bytes', ARGV[5])
local lo = redis.call('HGET', KEYS[1], 'min_ts')
if not lo or tonumber(ARGV[6]) < tonumber(lo) then
  redis.call('HSET', KEYS[1], 'min_ts', ARGV[6])
end
local hi = redis.call('HGET', KEYS[1], 'max_ts')
if not hi or tonumber(ARGV[7]) > tonumber(hi) then
  redis.call('HSET', KEYS[1], 'max_ts', ARGV[7])
end
redis.call('HSET', KEYS[1], 'last', ARGV[3])
redis.call('ZADD', KEYS[4], 0, ARGV[1])
redis.call('ZADD', KEYS[5], 0, ARGV[1])
return {1}
"#;

/// Replaces one block by its rewrite without one entry (delete of an entry), if the block is
/// still the one the caller read (compare-and-swap on the index member).
///
/// `KEYS`: meta, index, blocks, logs.
/// `ARGV`: log name, old member, new member (empty when the block is now empty), new block,
/// negated byte count of the removed event.
///
/// Returns 1 when replaced, 0 when the old member is gone (the caller re-reads).
const REPLACE_BLOCK: &str = r#"
local bad = check_types(KEYS, {'hash', 'zset', 'hash', 'zset'})
if bad then return bad end
if not redis.call('ZSCORE', KEYS[2], ARGV[2]) then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], string.sub(ARGV[2], 1, 16))
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], 0, ARGV[3])
  redis.call('HSET', KEYS[3], string.sub(ARGV[3], 1, 16), ARGV[4])
end
local n = redis.call('HINCRBY', KEYS[1], 'count', -1)
redis.call('HINCRBY', KEYS[1], 'bytes', ARGV[5])
if n <= 0 then
  emptied(KEYS[1], KEYS[4], ARGV[1])
end
return 1
"#;

/// Removes a log's blocks and index; keeps its counters hash at zero with the id floor, so
/// that a log of the same name never reuses an id.
///
/// `KEYS`: meta, index, blocks, logs. `ARGV`: log name. Returns the number of entries removed.
const DELETE_LOG: &str = r#"
local bad = check_types(KEYS, {'hash', 'zset', 'hash', 'zset'})
if bad then return bad end
local n = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
redis.call('UNLINK', KEYS[2], KEYS[3])
if redis.call('EXISTS', KEYS[1]) == 1 then
  emptied(KEYS[1], KEYS[4], ARGV[1])
else
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return n
"#;

/// Removes every key of some logs of a tenant, counters included.
///
/// `KEYS`: logs, names, then (meta, index, blocks) per log. `ARGV`: the log names.
/// Returns the number of entries removed.
const DELETE_LOGS_COMPLETELY: &str = r#"
local n = 0
for i, name in ipairs(ARGV) do
  local meta = KEYS[3 * i]
  if redis.call('TYPE', meta)['ok'] == 'hash' then
    n = n + tonumber(redis.call('HGET', meta, 'count') or '0')
  end
  redis.call('UNLINK', meta, KEYS[3 * i + 1], KEYS[3 * i + 2])
  redis.call('ZREM', KEYS[1], name)
  redis.call('ZREM', KEYS[2], name)
end
return n
"#;

/// Replaces some of a log's blocks by others in one step, if the blocks are still the ones
/// the caller read (compare-and-swap on their index members): retention (old blocks, no new
/// ones), erasure (a block by its rewrite without some entries) and import (the blocks an
/// imported id range meets, merged with the import). Counters follow from the members.
///
/// `KEYS`: meta, index, blocks, logs, names.
/// `ARGV`: log name, new id floor (16 bytes or empty), min ts and max ts of added entries
/// (or empty), lex range lo and hi (or empty) that must hold exactly the old members, the
/// number of old members, the old members, then pairs of (new member, encoded block).
///
/// Returns 1 when replaced, 0 (nothing written) when an old member is gone or the range holds
/// another block (the caller re-reads).
const REWRITE: &str = r#"
local bad = check_types(KEYS, {'hash', 'zset', 'hash', 'zset', 'zset'})
if bad then return bad end
local n_old = tonumber(ARGV[7])
for i = 8, 7 + n_old do
  if not redis.call('ZSCORE', KEYS[2], ARGV[i]) then return 0 end
end
if ARGV[5] ~= '' and redis.call('ZLEXCOUNT', KEYS[2], ARGV[5], ARGV[6]) ~= n_old then
  return 0
end
local count, bytes = 0, 0
for i = 8, 7 + n_old do
  local m = ARGV[i]
  count = count - be32(m, 33)
  bytes = bytes - be32(m, 37)
  redis.call('ZREM', KEYS[2], m)
  redis.call('HDEL', KEYS[3], string.sub(m, 1, 16))
end
for i = 8 + n_old, #ARGV, 2 do
  local m = ARGV[i]
  count = count + be32(m, 33)
  bytes = bytes + be32(m, 37)
  redis.call('ZADD', KEYS[2], 0, m)
  redis.call('HSET', KEYS[3], string.sub(m, 1, 16), ARGV[i + 1])
end
local n = redis.call('HINCRBY', KEYS[1], 'count', count)
redis.call('HINCRBY', KEYS[1], 'bytes', bytes)
if ARGV[3] ~= '' then
  local lo = redis.call('HGET', KEYS[1], 'min_ts')
  if not lo or tonumber(ARGV[3]) < tonumber(lo) then
    redis.call('HSET', KEYS[1], 'min_ts', ARGV[3])
  end
  local hi = redis.call('HGET', KEYS[1], 'max_ts')
  if not hi or tonumber(ARGV[4]) > tonumber(hi) then
    redis.call('HSET', KEYS[1], 'max_ts', ARGV[4])
  end
end
if ARGV[2] ~= '' then
  local floor = redis.call('HGET', KEYS[1], 'last')
  if not floor or id_lt(floor, ARGV[2]) then
    redis.call('HSET', KEYS[1], 'last', ARGV[2])
  end
end
if n <= 0 then
  emptied(KEYS[1], KEYS[4], ARGV[1])
else
  redis.call('ZADD', KEYS[4], 0, ARGV[1])
  redis.call('ZADD', KEYS[5], 0, ARGV[1])
end
return 1
"#;

fn with_helpers(body: &str) -> Script {
    Script::new(&format!("{HELPERS}{body}"))
}

pub static APPEND_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_helpers(APPEND));
pub static REPLACE_BLOCK_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_helpers(REPLACE_BLOCK));
pub static DELETE_LOG_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_helpers(DELETE_LOG));
pub static DELETE_LOGS_COMPLETELY_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| with_helpers(DELETE_LOGS_COMPLETELY));
pub static REWRITE_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_helpers(REWRITE));

/// Every script, to load them at connect time (which also proves the credentials may run them).
pub fn all() -> [&'static Script; 5] {
    [
        &APPEND_SCRIPT,
        &REPLACE_BLOCK_SCRIPT,
        &DELETE_LOG_SCRIPT,
        &DELETE_LOGS_COMPLETELY_SCRIPT,
        &REWRITE_SCRIPT,
    ]
}
