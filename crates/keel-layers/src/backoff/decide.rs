//! The per-attempt decisions shared by [`Backoff`](super::Backoff) and [`RetryPolicy`](super::RetryPolicy).

use std::error::Error;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use tokio::time::Instant;

use super::pacing::advertised_rate;
use super::policy::{BackoffPolicy, GiveUp};
use super::stats::RetryKind;
use super::{is_timeout_error, is_transport_error};
use crate::hints::{server_delay, DelaySource};

/// A retryable outcome: which counter it goes to and what the server asked for.
#[derive(Clone, Copy, Debug)]
pub(super) struct Retryable {
    pub(super) kind: RetryKind,
    pub(super) hint: Option<(Duration, DelaySource)>,
}

/// What the last attempt produced, for log events.
#[derive(Clone, Copy, Debug)]
pub(super) enum Attempt<'a> {
    Status(StatusCode),
    Error(&'a (dyn Error + 'static)),
}

impl BackoffPolicy {
    /// Feeds a response to the shared pacing state (adaptive rate, 429 gate) and says
    /// whether it is worth retrying.
    ///
    /// The clock is read only when the pacing state needs it (a 429, adaptive pacing): a
    /// successful response without adaptive pacing costs a status comparison.
    pub(super) fn inspect_response(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        retry_safe: bool,
    ) -> Option<Retryable> {
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.rate.throttled(Instant::now());
        } else if self.learns && !status.is_server_error() {
            self.rate.succeeded(Instant::now());
        }
        let kind = self.classify(status, retry_safe)?;
        let hint = server_delay(headers, SystemTime::now());
        if let (RetryKind::Throttled, true, Some((delay, _))) = (kind, self.gate, hint) {
            // NOTE: a reset beyond max_delay is not worth holding every request for.
            if delay <= self.max_delay {
                let release = advertised_rate(headers, SystemTime::now());
                self.rate.close_until_paced(Instant::now() + delay, release);
                crate::metrics::count(crate::metrics::GATE_CLOSURES);
            }
        }
        Some(Retryable { kind, hint })
    }

    /// Whether an error is a transport failure or a timed-out attempt this request may be
    /// retried after (both only where repeating the request was allowed).
    pub(super) fn inspect_error(
        &self,
        error: &(dyn Error + 'static),
        retry_safe: bool,
    ) -> Option<Retryable> {
        let enabled = self.retry_transport || retry_safe;
        (enabled && (is_transport_error(error) || is_timeout_error(error))).then_some(Retryable {
            kind: RetryKind::Other,
            hint: None,
        })
    }

    /// Plans retry number `attempts` (attempts made so far): checks the limits, then gets
    /// the request to send from `replay`, then withdraws from the budget, in that order so
    /// a refusal spends nothing. Counts and logs the outcome.
    pub(super) fn plan<T>(
        &self,
        retryable: Retryable,
        attempt: Attempt<'_>,
        attempts: u32,
        started: Instant,
        replay: impl FnOnce() -> Option<T>,
    ) -> Option<(Duration, T)> {
        let now = Instant::now();
        let planned = self
            .next_delay(attempts, started, now, retryable.hint)
            .and_then(|delay| {
                replay()
                    .map(|next| (delay, next))
                    .ok_or(GiveUp::NotReplayable)
            })
            .and_then(|planned| {
                if self.budget.withdraw() {
                    Ok(planned)
                } else {
                    Err(GiveUp::Budget)
                }
            });
        match planned {
            Ok(((delay, source), next)) => {
                self.stats.record_retry(retryable.kind, delay);
                crate::metrics::count_by(crate::metrics::RETRIES, "cause", retryable.kind.label());
                log_retry(attempt, attempts, delay, source);
                Some((delay, next))
            }
            Err(reason) => {
                self.stats.record_gave_up();
                crate::metrics::count_by(crate::metrics::GAVE_UP, "reason", reason.label());
                log_give_up(attempt, attempts, reason);
                None
            }
        }
    }
}

fn log_retry(attempt: Attempt<'_>, attempts: u32, delay: Duration, source: DelaySource) {
    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let source = source.as_str();
    match attempt {
        Attempt::Status(status) => tracing::info!(
            status = status.as_u16(),
            attempt = attempts,
            delay_ms,
            source,
            "retrying request"
        ),
        Attempt::Error(error) => tracing::info!(
            error = %error,
            attempt = attempts,
            delay_ms,
            source,
            "retrying request after a transport failure"
        ),
    }
}

fn log_give_up(attempt: Attempt<'_>, attempts: u32, reason: GiveUp) {
    let why = reason.as_str();
    match (attempt, reason) {
        (Attempt::Status(status), GiveUp::NotReplayable) => {
            tracing::warn!(
                status = status.as_u16(),
                attempts,
                reason = why,
                "not retrying"
            )
        }
        (Attempt::Status(status), _) => {
            tracing::debug!(
                status = status.as_u16(),
                attempts,
                reason = why,
                "not retrying"
            )
        }
        (Attempt::Error(error), _) => {
            tracing::debug!(error = %error, attempts, reason = why, "not retrying")
        }
    }
}
