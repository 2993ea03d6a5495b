//! The Lua scripts of the shared token store. Each runs atomically on the server.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: token, lock. ARGV: owner, lock ttl (ms).
///
/// Returns `{state, value, pttl}`: state 1 = a fresh token (`value`, `pttl` ms left);
/// 2 = no fresh token and this caller now holds the lock; 3 = no fresh token and another
/// caller holds the lock. In states 2 and 3, `value` is a token due for refresh (still valid
/// for `pttl` ms) or empty.
///
/// A value is `<fingerprint> <refresh ms> <authorization value>`; it is fresh while more than
/// `refresh ms` of its TTL is left. A value of another shape is never fresh, so the lock's
/// winner replaces it.
pub(super) static READ_OR_LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
local pttl = -2
if v then
  pttl = redis.call('PTTL', KEYS[1])
  local refresh = tonumber(string.match(v, '^%x+ (%d+) .'))
  if refresh and pttl > refresh then return {1, v, pttl} end
else
  v = ''
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, v, pttl} end
return {3, v, pttl}
",
    )
});

/// KEYS: token, lock. ARGV: owner, value, ttl (ms).
///
/// Stores the token and releases the lock if the caller still holds it (a holder whose lock
/// expired must not overwrite its successor's token). Returns 1 if stored.
pub(super) static STORE_AND_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
",
    )
});

/// KEYS: lock. ARGV: owner. Deletes the lock only if the caller still holds it.
pub(super) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// KEYS: token. ARGV: fingerprint. Deletes the token only if it is still the rejected one.
pub(super) static INVALIDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' ' then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});
