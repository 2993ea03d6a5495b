//! Randomised waits for retry schedules.
//!
//! Clients that fail together must not retry together: the backoff layer and the
//! client-credentials grant both spread their waits with these, so they live outside either.

use std::time::Duration;

use rand::Rng;

/// The upper bound of the jittered wait before retry `retry` (from 1):
/// `min(cap, base * 2^(retry-1))`.
pub(crate) fn schedule_bound(base: Duration, cap: Duration, retry: u32) -> Duration {
    let factor = 1u32
        .checked_shl(retry.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(cap)
}

/// A uniformly random wait in `0..=schedule_bound(base, cap, retry)` ("full jitter").
pub(crate) fn full_jitter<R: Rng + ?Sized>(
    base: Duration,
    cap: Duration,
    retry: u32,
    rng: &mut R,
) -> Duration {
    random_up_to(schedule_bound(base, cap, retry), rng)
}

/// Half of `schedule_bound(base, cap, retry)` plus a uniformly random share of the other half
/// ("equal jitter"): never shorter than half the schedule.
#[cfg_attr(not(feature = "client-credentials"), allow(dead_code))]
pub(crate) fn equal_jitter<R: Rng + ?Sized>(
    base: Duration,
    cap: Duration,
    retry: u32,
    rng: &mut R,
) -> Duration {
    let half = schedule_bound(base, cap, retry) / 2;
    half + random_up_to(half, rng)
}

fn random_up_to<R: Rng + ?Sized>(bound: Duration, rng: &mut R) -> Duration {
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn schedule_doubles_up_to_the_cap() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(1));
        let bounds: Vec<_> = (1..=6)
            .map(|n| schedule_bound(base, cap, n).as_millis())
            .collect();
        assert_eq!(bounds, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(schedule_bound(base, cap, 200), cap);
    }

    #[test]
    fn jitter_stays_within_bounds_and_spreads() {
        let mut rng = SmallRng::seed_from_u64(7);
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(2));
        for retry in 1..=8 {
            let bound = schedule_bound(base, cap, retry);
            let samples: Vec<_> = (0..500)
                .map(|_| full_jitter(base, cap, retry, &mut rng))
                .collect();
            assert!(
                samples.iter().all(|d| *d <= bound),
                "retry {retry} exceeded {bound:?}"
            );
            // Full jitter: both halves of the range are used.
            assert!(
                samples.iter().any(|d| *d < bound / 4),
                "retry {retry} never low"
            );
            assert!(
                samples.iter().any(|d| *d > bound * 3 / 4),
                "retry {retry} never high"
            );
        }
    }

    #[test]
    fn equal_jitter_stays_in_the_upper_half() {
        let mut rng = SmallRng::seed_from_u64(11);
        let (base, cap) = (Duration::from_millis(500), Duration::from_secs(8));
        for retry in 1..=6 {
            let bound = schedule_bound(base, cap, retry);
            let samples: Vec<_> = (0..200)
                .map(|_| equal_jitter(base, cap, retry, &mut rng))
                .collect();
            assert!(samples.iter().all(|d| *d >= bound / 2 && *d <= bound));
            assert!(samples.iter().any(|d| *d < bound * 3 / 4));
            assert!(samples.iter().any(|d| *d > bound * 3 / 4));
        }
    }
}
