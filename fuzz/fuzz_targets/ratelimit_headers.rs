//! A whole header map (`name: value` lines) through `server_delay`. Must not panic.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use keel_layers::backoff::server_delay;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 6] = [
    "retry-after",
    "date",
    "inin-ratelimit-reset",
    "x-ratelimit-reset",
    "ratelimit-reset",
    "inin-ratelimit-allowed",
];

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some((&selector, value)) = line.split_first() else {
            continue;
        };
        let name = HeaderName::from_static(NAMES[usize::from(selector) % NAMES.len()]);
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(name, v);
        }
    }
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let _ = server_delay(&headers, now);
});
