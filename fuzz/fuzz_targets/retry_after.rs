//! `Retry-After` and rate-limit reset values: any bytes, any clock. Must not panic.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use http::HeaderValue;
use keel_layers::backoff::{parse_ratelimit_reset, parse_retry_after};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (clock, value) = data.split_at(data.len().min(5));
    let mut secs = [0u8; 8];
    secs[..clock.len()].copy_from_slice(clock);
    let now = UNIX_EPOCH + Duration::from_secs(u64::from_le_bytes(secs));
    if let Ok(v) = HeaderValue::from_bytes(value) {
        if let Some(wait) = parse_retry_after(&v, now) {
            // NOTE: delta-seconds are exact; a date wait is never zero.
            let text = v.to_str().unwrap().trim();
            if !text.bytes().all(|b| b.is_ascii_digit()) {
                assert!(!wait.is_zero());
            }
        }
        let _ = parse_ratelimit_reset(&v, now);
    }
});
