//! Measurement 3: many concurrent callers on an expired token cause exactly one fetch, and
//! all of them get its token promptly.
//!
//! The cache is primed with a short-lived token that is then left to expire. `callers` tasks
//! then ask for a token at once; the token source counts its fetches and holds the refresh
//! open until every caller has asked, so all of them pile up on the one in-flight fetch. The
//! figure is the time from the fetch's completion until the last caller holds the new token:
//! the cost of fanning one result out to every waiter.
//!
//! # Example
//!
//! ```
//! use keel_bench::single_flight::run;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let report = run(100).await.unwrap();
//! assert_eq!(report.fetches, 1);
//! assert_eq!(report.callers, 100);
//! # });
//! ```

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use keel_layers::auth::{token_source_fn, Token, TokenCache};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tower::BoxError;

/// Lifetime of the priming token; the callers start once it has expired.
const PRIMING_LIFETIME: Duration = Duration::from_millis(30);

/// What a single-flight run measured.
#[derive(Debug, Clone)]
pub struct SingleFlightReport {
    /// Callers that asked for a token at once.
    pub callers: usize,
    /// Fetches the expired token caused (the priming fetch not counted); must be 1.
    pub fetches: u64,
    /// From the fetch's completion until the last caller had the new token.
    pub fan_out_last: Duration,
    /// From the fetch's completion until half of the callers had it.
    pub fan_out_median: Duration,
}

#[derive(Debug, Default)]
struct Probe {
    fetches: AtomicU64,
    asked: AtomicUsize,
    all_asked: Notify,
    completed: OnceLock<Instant>,
}

/// Runs `callers` concurrent callers against an expired token on the current runtime.
///
/// # Errors
///
/// When a caller gets an error or a token other than the refreshed one, or when the source
/// was asked more than once for the expired token.
pub async fn run(callers: usize) -> Result<SingleFlightReport, BoxError> {
    let probe = Arc::new(Probe::default());
    let source_probe = probe.clone();
    let tokens = TokenCache::new(token_source_fn(move || {
        let probe = source_probe.clone();
        async move {
            let n = probe.fetches.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                return Token::bearer("priming-token", Some(PRIMING_LIFETIME));
            }
            // NOTE: `notified()` is registered before the count is checked, so the last
            // caller's `notify_waiters` cannot slip between the check and the wait.
            let all_asked = probe.all_asked.notified();
            tokio::pin!(all_asked);
            all_asked.as_mut().enable();
            if probe.asked.load(Ordering::SeqCst) < callers {
                all_asked.await;
            }
            // Let the last caller reach the cache after counting itself.
            for _ in 0..64 {
                tokio::task::yield_now().await;
            }
            let token = Token::bearer("refreshed-token", Some(Duration::from_secs(3600)));
            let _ = probe.completed.set(Instant::now());
            token
        }
    }))
    .refresh_before(Duration::ZERO);

    let primed = tokens.token().await?;
    tokio::time::sleep(PRIMING_LIFETIME + Duration::from_millis(5)).await;
    if tokens.cached().is_some() {
        return Err("the priming token did not expire".into());
    }

    let base = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..callers {
        let tokens = tokens.clone();
        let probe = probe.clone();
        set.spawn(async move {
            if probe.asked.fetch_add(1, Ordering::SeqCst) + 1 == callers {
                probe.all_asked.notify_waiters();
            }
            let token = tokens.token().await;
            (token, Instant::now())
        });
    }
    let mut got = Vec::with_capacity(callers);
    while let Some(joined) = set.join_next().await {
        let (token, at) = joined?;
        let token = token?;
        if token.id() == primed.id() {
            return Err("a caller got the expired token".into());
        }
        got.push(at.saturating_duration_since(base));
    }
    let fetches = probe.fetches.load(Ordering::SeqCst) - 1;
    let completed = probe
        .completed
        .get()
        .copied()
        .ok_or("the refresh never completed")?
        .saturating_duration_since(base);
    got.sort();
    let after = |d: Duration| d.saturating_sub(completed);
    Ok(SingleFlightReport {
        callers,
        fetches,
        fan_out_last: after(got.last().copied().unwrap_or_default()),
        fan_out_median: after(got.get(got.len() / 2).copied().unwrap_or_default()),
    })
}

/// The report as a markdown table.
pub fn table(r: &SingleFlightReport) -> String {
    format!(
        "| callers | fetches | fetch done → median caller | fetch done → last caller |\n\
         |---:|---:|---:|---:|\n| {} | {} | {:.2} ms | {:.2} ms |\n",
        r.callers,
        r.fetches,
        r.fan_out_median.as_secs_f64() * 1e3,
        r.fan_out_last.as_secs_f64() * 1e3
    )
}
