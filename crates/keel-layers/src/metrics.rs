//! The layers' counters, exported through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! Operators of a fleet watch it through metrics, not logs. With the `metrics` feature on,
//! every layer counts what it does into whatever recorder the program installed (Prometheus,
//! StatsD, OpenTelemetry…); without it these calls compile to nothing. The per-instance
//! `stats()` handles (`TokenCache::stats`, `RefreshStats`, `BackoffStats`) count the same
//! events for one stack; these counters add them up for the process.
//!
//! Labels take only fixed values (a cause, a reason): never a token, a secret, a URL or any
//! string a caller chose, so a metric cannot leak a credential or explode in cardinality.
//!
//! | Counter | Labels | Counts |
//! |---|---|---|
//! | [`TOKEN_FETCHES`] | | token fetches started by a `TokenCache` |
//! | [`TOKEN_FETCH_FAILURES`] | | token fetches that failed |
//! | [`TOKEN_INVALIDATIONS`] | | tokens dropped after a 401 |
//! | [`REPLAYS_401`] | | requests replayed after a 401 |
//! | [`RETRIES`] | `cause`: `throttled` (429), `unavailable` (503), `other` | retries |
//! | [`GATE_CLOSURES`] | | 429s that closed the cooperative gate |
//! | [`GAVE_UP`] | `reason`: `attempts`, `max_delay`, `max_elapsed`, `budget`, `not_replayable` | retryable answers returned as they were |

/// Token fetches started by a `TokenCache` (one per single-flight refresh).
pub const TOKEN_FETCHES: &str = "keel_token_fetches_total";
/// Token fetches that failed.
pub const TOKEN_FETCH_FAILURES: &str = "keel_token_fetch_failures_total";
/// Tokens a `TokenCache` dropped because a server rejected them.
pub const TOKEN_INVALIDATIONS: &str = "keel_token_invalidations_total";
/// Requests `RefreshOn401` replayed with a new token.
pub const REPLAYS_401: &str = "keel_replays_401_total";
/// Retries by the backoff layer, labelled `cause`.
pub const RETRIES: &str = "keel_retries_total";
/// 429s whose reset time closed the cooperative gate.
pub const GATE_CLOSURES: &str = "keel_gate_closures_total";
/// Retryable answers returned as they were, labelled `reason` (`budget`: the retry budget was
/// exhausted).
pub const GAVE_UP: &str = "keel_retries_given_up_total";

/// Adds one to the counter `name`.
#[inline]
pub(crate) fn count(name: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(name).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = name;
}

/// Adds one to the counter `name` with the fixed label `key = value`.
#[inline]
pub(crate) fn count_by(name: &'static str, key: &'static str, value: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(name, key => value).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (name, key, value);
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;

    #[test]
    fn counters_reach_the_installed_recorder_with_fixed_labels() {
        use ::metrics::{
            Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
            Unit,
        };
        use std::sync::{Arc, Mutex};

        struct Seen;
        impl CounterFn for Seen {
            fn increment(&self, _: u64) {}
            fn absolute(&self, _: u64) {}
        }
        #[derive(Default)]
        struct Keys(Arc<Mutex<Vec<String>>>);
        impl Recorder for Keys {
            fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                self.0
                    .lock()
                    .unwrap()
                    .push(format!("{}{labels:?}", key.name()));
                Counter::from_arc(Arc::new(Seen))
            }
            fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
                Gauge::noop()
            }
            fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
                Histogram::noop()
            }
        }
        let keys = Keys::default();
        let seen = keys.0.clone();
        ::metrics::with_local_recorder(&keys, || {
            count(TOKEN_FETCHES);
            count_by(RETRIES, "cause", "throttled");
        });
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "keel_token_fetches_total[]",
                "keel_retries_total[\"cause=throttled\"]"
            ]
        );
    }
}
