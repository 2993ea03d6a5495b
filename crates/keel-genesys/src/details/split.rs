//! How an export interval is cut into parts.

use std::time::Duration;

use crate::models::Interval;

/// The most results the details query pages through (`pageNumber * pageSize`).
pub const MAX_RESULTS: u64 = 100_000;

/// How [`conversation_details`](crate::Client::conversation_details) cuts its interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitPolicy {
    /// Longest part planned up front (`None`: one part for the whole interval). Default: a day.
    pub max_part: Option<Duration>,
    /// A part whose first page reports more hits than this is halved. Default
    /// [`PART_RESULTS`]; at most [`MAX_RESULTS`].
    pub max_results: u64,
}

/// The default most hits of one part.
///
/// Below the API's [`MAX_RESULTS`] on purpose: an export keeps the ids of the part in
/// progress (to skip them if the part must be paged again after its results moved), so the
/// part size, not the export size, bounds that memory; and small parts avoid the deep page
/// numbers the API answers slowest.
pub const PART_RESULTS: u64 = 20_000;

impl Default for SplitPolicy {
    fn default() -> Self {
        Self {
            max_part: Some(Duration::from_secs(86_400)),
            max_results: PART_RESULTS,
        }
    }
}

/// Cuts `interval` into consecutive parts of at most `max_part` (the last may be shorter).
/// The parts are half-open and adjacent, so they cover `interval` exactly once.
pub fn plan_parts(interval: Interval, max_part: Option<Duration>) -> Vec<Interval> {
    let Some(step) = max_part.filter(|d| d.as_millis() >= 1) else {
        return vec![interval];
    };
    let step = time::Duration::milliseconds(i64::try_from(step.as_millis()).unwrap_or(i64::MAX));
    let mut parts = Vec::new();
    let mut rest = interval;
    loop {
        let cut = rest.start().checked_add(step);
        match cut.and_then(|at| rest.split_at(at)) {
            Some((head, tail)) => {
                parts.push(head);
                rest = tail;
            }
            None => {
                parts.push(rest);
                return parts;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(s: &str) -> Interval {
        s.parse().unwrap()
    }

    fn assert_exact_cover(whole: Interval, parts: &[Interval]) {
        assert_eq!(parts.first().unwrap().start(), whole.start());
        assert_eq!(parts.last().unwrap().end(), whole.end());
        for w in parts.windows(2) {
            assert_eq!(
                w[0].end(),
                w[1].start(),
                "gap or overlap between {} and {}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn a_week_is_cut_into_days() {
        let whole = iv("2024-01-01T00:00:00Z/2024-01-08T00:00:00Z");
        let parts = plan_parts(whole, Some(Duration::from_secs(86_400)));
        assert_eq!(parts.len(), 7);
        assert_exact_cover(whole, &parts);
        assert!(parts
            .iter()
            .all(|p| p.duration() == Duration::from_secs(86_400)));
    }

    #[test]
    fn the_last_part_is_the_remainder() {
        let whole = iv("2024-01-01T00:00:00Z/2024-01-03T06:00:00.001Z");
        let parts = plan_parts(whole, Some(Duration::from_secs(86_400)));
        assert_eq!(parts.len(), 3);
        assert_exact_cover(whole, &parts);
        assert_eq!(
            parts[2].duration(),
            Duration::from_millis(6 * 3_600_000 + 1)
        );
    }

    #[test]
    fn no_max_part_or_a_short_interval_is_one_part() {
        let whole = iv("2024-01-01T00:00:00Z/2024-01-03T00:00:00Z");
        assert_eq!(plan_parts(whole, None), vec![whole]);
        assert_eq!(
            plan_parts(whole, Some(Duration::from_secs(10 * 86_400))),
            vec![whole]
        );
        assert_eq!(plan_parts(whole, Some(Duration::ZERO)), vec![whole]);
    }

    #[test]
    fn recursive_halving_covers_exactly() {
        let whole = iv("2024-01-01T00:00:00Z/2024-01-01T00:00:01.001Z");
        let mut parts = vec![whole];
        for _ in 0..5 {
            parts = parts
                .iter()
                .flat_map(|p| match p.halves() {
                    Some((a, b)) => vec![a, b],
                    None => vec![*p],
                })
                .collect();
        }
        assert_eq!(parts.len(), 32);
        assert_exact_cover(whole, &parts);
    }
}
