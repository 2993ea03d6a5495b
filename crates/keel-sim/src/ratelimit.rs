//! A token bucket over authenticated API requests, with Genesys-style headers.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The outcome of taking one request from the bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Take {
    /// Allowed; `used` of `allowed` are spent, the bucket is full again in `reset_secs`.
    Allowed { used: u64, reset_secs: u64 },
    /// Refused; a request fits again after `wait`.
    Limited { wait: Duration },
}

/// Token bucket refilled at `rate` per second up to `burst`.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    pub(crate) burst: u64,
    bucket: Mutex<Bucket>,
}

impl RateLimiter {
    pub(crate) fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        let burst = burst.max(1);
        Self {
            rate: f64::from(rate_per_sec.max(1)),
            burst: u64::from(burst),
            bucket: Mutex::new(Bucket {
                tokens: f64::from(burst),
                last: now,
            }),
        }
    }

    pub(crate) fn take(&self, now: Instant) -> Take {
        let mut b = self.bucket.lock().expect("bucket poisoned");
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst as f64);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            let missing = self.burst as f64 - b.tokens;
            Take::Allowed {
                used: missing.ceil() as u64,
                reset_secs: (missing / self.rate).ceil() as u64,
            }
        } else {
            Take::Limited {
                wait: Duration::from_secs_f64((1.0 - b.tokens) / self.rate),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_refuses_past_burst_and_refills_at_rate() {
        let limiter = RateLimiter::new(2, 2, Instant::now());
        assert!(matches!(
            limiter.take(Instant::now()),
            Take::Allowed { used: 1, .. }
        ));
        assert!(matches!(
            limiter.take(Instant::now()),
            Take::Allowed { used: 2, .. }
        ));
        let Take::Limited { wait } = limiter.take(Instant::now()) else {
            panic!("third request in the same instant must be limited");
        };
        assert_eq!(wait, Duration::from_millis(500));
        tokio::time::advance(wait).await;
        assert!(matches!(limiter.take(Instant::now()), Take::Allowed { .. }));
    }
}
