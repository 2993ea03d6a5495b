//! [`RetryPolicy`]: the same decisions as [`Backoff`](super::Backoff), for plain `tower::retry::Retry`.

use std::error::Error;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::{Request, Response};
use tokio::time::{sleep_until, Instant};
use tower::retry::Policy;

use super::decide::Attempt;
use super::rate_state::RateState;
use super::{BackoffPolicy, RetrySafe};
use crate::replay::{try_clone_request, TryCloneBody};

/// A [`tower::retry::Policy`] making the same decisions as [`Backoff`](super::Backoff),
/// for stacks built on plain [`tower::retry::Retry`].
///
/// It honours `Retry-After` and rate-limit resets, the jittered schedule, `max_attempts`,
/// `max_delay`, the shared budget, stats and `tracing` events, and it waits at the shared
/// pacing gate and token bucket before each *retry*. What `Retry` cannot give it: first
/// attempts are not paced, the 429 body is dropped rather than drained, and `max_elapsed`
/// is counted from the first response rather than the call. Prefer
/// [`BackoffLayer`](super::BackoffLayer) when you can.
///
/// The error type must expose the error (`E: AsRef<dyn Error + Send + Sync>`, as
/// `tower::BoxError` does) so transport failures can be recognised.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use keel_layers::backoff::{BackoffPolicy, RetryPolicy};
/// use tower::{retry::Retry, BoxError, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), BoxError> {
/// let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
/// let api = tower::service_fn(move |_req: Request<Full<Bytes>>| {
///     let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
///     async move {
///         let status = if n == 0 { 429 } else { 200 };
///         Ok::<_, BoxError>(Response::builder().status(status).header("retry-after", "2").body(Full::<Bytes>::default())?)
///     }
/// });
/// let policy = BackoffPolicy::new();
/// let stats = policy.stats();
/// let client = Retry::new(RetryPolicy::new(policy), api);
/// let response = client.oneshot(Request::get("http://api.test/").body(Full::default())?).await?;
/// assert_eq!(response.status(), 200);
/// assert_eq!(stats.total_wait(), Duration::from_secs(2));
/// # Ok(())
/// # }
/// ```
///
/// # Clone
///
/// `Retry` clones the policy for each request; the clones share the budget, pacing and
/// stats of the [`BackoffPolicy`], and each counts its own attempts.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    policy: Arc<BackoffPolicy>,
    attempts: u32,
    started: Option<Instant>,
}

impl RetryPolicy {
    /// A tower retry policy deciding as `policy` does.
    pub fn new(policy: BackoffPolicy) -> Self {
        RetryPolicy {
            policy: Arc::new(policy),
            attempts: 0,
            started: None,
        }
    }
}

impl From<BackoffPolicy> for RetryPolicy {
    fn from(policy: BackoffPolicy) -> Self {
        RetryPolicy::new(policy)
    }
}

impl<B, ResB, E> Policy<Request<B>, Response<ResB>, E> for RetryPolicy
where
    B: TryCloneBody,
    E: AsRef<dyn Error + Send + Sync + 'static>,
{
    type Future = BoxFuture<'static, ()>;

    fn retry(
        &mut self,
        req: &mut Request<B>,
        result: &mut Result<Response<ResB>, E>,
    ) -> Option<Self::Future> {
        let now = Instant::now();
        let started = *self.started.get_or_insert(now);
        self.attempts += 1;
        let policy = &*self.policy;
        let retry_safe = req.extensions().get::<RetrySafe>().is_some();
        let (retryable, attempt) = match result {
            Ok(response) => {
                let status = response.status();
                let retryable = policy.inspect_response(status, response.headers(), retry_safe)?;
                (retryable, Attempt::Status(status))
            }
            Err(error) => {
                let error: &(dyn Error + 'static) = E::as_ref(error);
                (
                    policy.inspect_error(error, retry_safe)?,
                    Attempt::Error(error),
                )
            }
        };
        // NOTE: `Retry` sends `req` itself next; it may only if it can still be replayed.
        let replayable = || req.body().try_clone_body().map(drop);
        let (delay, ()) = policy.plan(retryable, attempt, self.attempts, started, replayable)?;
        Some(Box::pin(paced_wait(self.policy.rate.clone(), now + delay)))
    }

    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        // NOTE: `Retry` calls this once per request on the service's own policy (which
        // never retries) and then once per retry on the request's copy.
        if self.attempts == 0 {
            self.policy.budget.deposit();
        }
        try_clone_request(req)
    }
}

/// Sleeps until `until`, then until the shared gate and bucket let an attempt go.
async fn paced_wait(rate: Arc<dyn RateState>, until: Instant) {
    sleep_until(until).await;
    while let Err(next) = rate.try_acquire(Instant::now()) {
        rate.wait(next).await;
    }
}
