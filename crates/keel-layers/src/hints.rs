//! Pure parsers for the headers a server uses to say how long to wait.
//!
//! Both the backoff layer (429/503) and the client-credentials grant (a token endpoint that
//! answers 429 or 503) read these hints, so they live here, outside either layer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};

/// Values above this are read as a Unix time rather than seconds to wait (2001-09-09).
const EPOCH_THRESHOLD: f64 = 1_000_000_000.0;

/// Genesys Cloud's "seconds until the rate-limit window resets" header.
pub const ININ_RATELIMIT_RESET: &str = "inin-ratelimit-reset";
/// The common `x-ratelimit-reset` header (seconds to wait, or a Unix time).
pub const X_RATELIMIT_RESET: &str = "x-ratelimit-reset";
/// The IETF draft `ratelimit-reset` header (seconds to wait).
pub const RATELIMIT_RESET: &str = "ratelimit-reset";

/// Where a wait came from: the server's headers or the client's own schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelaySource {
    /// The `Retry-After` header.
    RetryAfter,
    /// A rate-limit reset header (`inin-ratelimit-reset`, `x-ratelimit-reset`, `ratelimit-reset`).
    RateLimitReset,
    /// The exponential schedule with full jitter (the server gave no usable hint).
    Schedule,
}

impl DelaySource {
    /// A short name for logs: `retry-after`, `ratelimit-reset` or `schedule`.
    pub fn as_str(self) -> &'static str {
        match self {
            DelaySource::RetryAfter => "retry-after",
            DelaySource::RateLimitReset => "ratelimit-reset",
            DelaySource::Schedule => "schedule",
        }
    }
}

/// Parses a `Retry-After` value (RFC 9110 §10.2.3): delta-seconds or an HTTP-date.
///
/// An HTTP-date is measured from `now`. Returns `None` for a value that is unparseable,
/// negative, or a date not after `now`, so the caller falls back to its own schedule.
/// Delta-seconds too large for a `u64` saturate (the server asked for a very long wait).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderValue;
/// use keel_layers::hints::parse_retry_after;
///
/// let now = SystemTime::now();
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("5"), now), Some(Duration::from_secs(5)));
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("-1"), now), None);
/// ```
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // NOTE: only overflow can fail here, the text is all digits.
        let secs = text.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let date = httpdate::parse_http_date(text).ok()?;
    match date.duration_since(now) {
        Ok(wait) if !wait.is_zero() => Some(wait),
        _ => None,
    }
}

/// Parses a rate-limit reset value: seconds until the window resets (`"30"`, `"1.5"`),
/// or, for values of a billion or more, a Unix time in seconds measured from `now`.
///
/// Returns `None` for a value that is unparseable, negative, not finite, or a Unix time
/// not after `now`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderValue;
/// use keel_layers::hints::parse_ratelimit_reset;
///
/// let now = SystemTime::now();
/// assert_eq!(parse_ratelimit_reset(&HeaderValue::from_static("1.5"), now), Some(Duration::from_millis(1500)));
/// assert_eq!(parse_ratelimit_reset(&HeaderValue::from_static("soon"), now), None);
/// ```
pub fn parse_ratelimit_reset(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let secs: f64 = text.parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    if secs >= EPOCH_THRESHOLD {
        let at = UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(secs).ok()?)?;
        return match at.duration_since(now) {
            Ok(wait) if !wait.is_zero() => Some(wait),
            _ => None,
        };
    }
    Duration::try_from_secs_f64(secs).ok()
}

/// The wait a response's headers ask for, and which header asked.
///
/// `Retry-After` wins; then `inin-ratelimit-reset`, `x-ratelimit-reset` and
/// `ratelimit-reset`, in that order. An HTTP-date is measured from the response's own
/// `Date` header when it has a valid one (so a skewed local clock does not matter),
/// else from `now`. A header that does not parse is skipped.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderMap;
/// use keel_layers::backoff::{server_delay, DelaySource};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("inin-ratelimit-reset", "12".parse().unwrap());
/// assert_eq!(
///     server_delay(&headers, SystemTime::now()),
///     Some((Duration::from_secs(12), DelaySource::RateLimitReset)),
/// );
/// ```
pub fn server_delay(headers: &HeaderMap, now: SystemTime) -> Option<(Duration, DelaySource)> {
    if let Some(value) = headers.get(http::header::RETRY_AFTER) {
        let reference = headers
            .get(http::header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .unwrap_or(now);
        if let Some(wait) = parse_retry_after(value, reference) {
            return Some((wait, DelaySource::RetryAfter));
        }
    }
    [ININ_RATELIMIT_RESET, X_RATELIMIT_RESET, RATELIMIT_RESET]
        .into_iter()
        .filter_map(|name| headers.get(name))
        .find_map(|value| parse_ratelimit_reset(value, now))
        .map(|wait| (wait, DelaySource::RateLimitReset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_delta_seconds() {
        let now = at(1_700_000_000);
        assert_eq!(parse_retry_after(&hv("0"), now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(&hv(" 120 "), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after(&hv("99999999999999999999999"), now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn retry_after_rejects_negative_and_garbage() {
        let now = at(1_700_000_000);
        for bad in ["-5", "", "5s", "1.5", "soon", "+3"] {
            assert_eq!(parse_retry_after(&hv(bad), now), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_http_date_is_measured_from_now() {
        let now = at(1_700_000_000);
        let later = httpdate::fmt_http_date(at(1_700_000_042));
        assert_eq!(
            parse_retry_after(&hv(&later), now),
            Some(Duration::from_secs(42))
        );
        let earlier = httpdate::fmt_http_date(at(1_699_999_000));
        assert_eq!(parse_retry_after(&hv(&earlier), now), None);
        assert_eq!(
            parse_retry_after(&hv(&httpdate::fmt_http_date(now)), now),
            None
        );
    }

    #[test]
    fn ratelimit_reset_seconds_fractions_and_unix_times() {
        let now = at(1_700_000_000);
        assert_eq!(
            parse_ratelimit_reset(&hv("30"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_ratelimit_reset(&hv("0.25"), now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_ratelimit_reset(&hv("1700000007"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(parse_ratelimit_reset(&hv("1699999999"), now), None);
        for bad in ["-1", "", "1e3", "NaN", "inf", "1..2", "abc"] {
            assert_eq!(parse_ratelimit_reset(&hv(bad), now), None, "{bad:?}");
        }
    }

    #[test]
    fn server_delay_prefers_retry_after_then_genesys_reset() {
        let now = at(1_700_000_000);
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-reset", hv("9"));
        assert_eq!(
            server_delay(&headers, now),
            Some((Duration::from_secs(9), DelaySource::RateLimitReset))
        );
        headers.insert("inin-ratelimit-reset", hv("4"));
        assert_eq!(
            server_delay(&headers, now),
            Some((Duration::from_secs(4), DelaySource::RateLimitReset))
        );
        headers.insert("retry-after", hv("2"));
        assert_eq!(
            server_delay(&headers, now),
            Some((Duration::from_secs(2), DelaySource::RetryAfter))
        );
        headers.insert("retry-after", hv("garbage"));
        assert_eq!(
            server_delay(&headers, now),
            Some((Duration::from_secs(4), DelaySource::RateLimitReset))
        );
    }

    #[test]
    fn server_delay_measures_dates_from_the_response_date_header() {
        // The local clock is an hour off; the response's Date header is the reference.
        let skewed_now = at(1_700_003_600);
        let mut headers = HeaderMap::new();
        headers.insert("date", hv(&httpdate::fmt_http_date(at(1_700_000_000))));
        headers.insert(
            "retry-after",
            hv(&httpdate::fmt_http_date(at(1_700_000_007))),
        );
        assert_eq!(
            server_delay(&headers, skewed_now),
            Some((Duration::from_secs(7), DelaySource::RetryAfter))
        );
    }

    #[test]
    fn server_delay_is_none_without_hints() {
        assert_eq!(server_delay(&HeaderMap::new(), SystemTime::now()), None);
    }

    proptest! {
        #[test]
        fn retry_after_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                let _ = parse_retry_after(&value, SystemTime::now());
                let _ = parse_ratelimit_reset(&value, SystemTime::now());
            }
        }

        #[test]
        fn retry_after_delta_round_trips(secs in any::<u64>()) {
            let value = HeaderValue::from_str(&secs.to_string()).unwrap();
            prop_assert_eq!(parse_retry_after(&value, SystemTime::now()), Some(Duration::from_secs(secs)));
        }

        #[test]
        fn retry_after_date_round_trips(offset in 1u64..1_000_000) {
            let now = at(1_700_000_000);
            let value = HeaderValue::from_str(&httpdate::fmt_http_date(at(1_700_000_000 + offset))).unwrap();
            prop_assert_eq!(parse_retry_after(&value, now), Some(Duration::from_secs(offset)));
        }
    }
}
