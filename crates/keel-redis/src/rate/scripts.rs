//! The Lua scripts of the shared rate state. Each runs atomically on the server and reads the
//! server's clock, so the fleet's machines need not agree on the time.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: gate. ARGV: delay (ms), channel, origin, advertised rate (requests per second, or
/// empty).
///
/// Closes the gate until the server's now + delay unless it is already closed until later
/// (an atomic max), and then publishes `<origin> <delay ms> <rate>` on the channel. Returns 1
/// if the deadline moved.
pub(super) static CLOSE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local delay = tonumber(ARGV[1])
local deadline = now + delay
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if deadline > current then
  redis.call('SET', KEYS[1], deadline, 'PXAT', deadline)
  redis.call('PUBLISH', ARGV[2], ARGV[3] .. ' ' .. delay .. ' ' .. ARGV[4])
  return 1
end
return 0
",
    )
});

/// KEYS: gate. Returns how many ms the gate stays closed (0 when open).
pub(super) static REMAINING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 then return pttl end
return 0
",
    )
});

/// KEYS: bucket. ARGV: rate (per second), burst, wanted.
///
/// A token bucket shared by the fleet that refills at `rate` up to `burst`. Each call
/// reserves `wanted` permits at once and returns how many ms the caller must wait before
/// using them (0 when the bucket held them): the bucket may go into debt, which later
/// callers wait out in turn, so every call is one round trip and no permit is used before
/// the bucket would have held it.
pub(super) static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate) - wanted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
local debt = math.max(0, -tokens) / rate
redis.call('PEXPIRE', KEYS[1], math.ceil((debt + burst / rate) * 1000) + 1000)
return math.ceil(debt * 1000)
",
    )
});
