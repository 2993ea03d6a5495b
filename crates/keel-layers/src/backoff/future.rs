use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Buf;
use http::{Request, Response};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use tokio::time::{sleep_until, Instant, Sleep};
use tower::{BoxError, Service};

use super::decide::Attempt;
use super::rate_state::GateWait;
use super::service::Shared;
use crate::replay::{try_clone_request, TryCloneBody};

type Drain = Pin<Box<dyn Future<Output = ()> + Send>>;

pin_project! {
    /// Response future for [`Backoff`](super::Backoff).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future>,
        // The service for the next attempt, cloned from the shared spare when one is due
        // (boxed: rarely needed, and the future is moved by value through every layer above).
        service: Option<Box<S>>,
        // Before an attempt, the request to send; while one is in flight, a copy of it for
        // a retry (`None` when retries are off or the body cannot be replayed). One slot for
        // both keeps the future small: it is moved by value through every layer above.
        request: Option<Request<B>>,
        sleep: Option<Pin<Box<Sleep>>>,
        drain: Option<Drain>,
        paced_since: Option<Instant>,
        shared: Arc<Shared<S>>,
        attempts: u32,
        // Replays a hook may still ask for (0 without a hook).
        replays_left: u32,
        started: Instant,
        retry_safe: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // Waiting for the rate state (gate, pacing permits) before an attempt: `wait` is
        // its slow path, set while it asked to wait.
        Pacing { wait: Option<GateWait> },
        // Waiting for the inner service to be ready.
        Ready,
        Called { #[pin] future: F },
        // Waiting out a delay while the last response's body drains.
        Waiting,
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn called(
        future: S::Future,
        backup: Option<Request<B>>,
        shared: Arc<Shared<S>>,
        retry_safe: bool,
        started: Instant,
    ) -> Self {
        ResponseFuture {
            state: State::Called { future },
            service: None,
            request: backup,
            sleep: None,
            drain: None,
            paced_since: None,
            replays_left: shared.max_replays,
            shared,
            attempts: 0,
            started,
            retry_safe,
        }
    }

    pub(super) fn paced(
        request: Request<B>,
        until: Instant,
        shared: Arc<Shared<S>>,
        retry_safe: bool,
        started: Instant,
    ) -> Self {
        ResponseFuture {
            state: State::Pacing {
                wait: Some(shared.policy.rate.wait(until)),
            },
            service: None,
            request: Some(request),
            sleep: None,
            drain: None,
            paced_since: Some(started),
            replays_left: shared.max_replays,
            shared,
            attempts: 0,
            started,
            retry_safe,
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Pacing { .. } => "pacing",
            State::Ready => "ready",
            State::Called { .. } => "called",
            State::Waiting => "waiting",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: TryCloneBody,
    ResB: http_body::Body + Send + 'static,
{
    type Output = Result<Response<ResB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let policy = &this.shared.policy;
        loop {
            match this.state.as_mut().project() {
                StateProj::Pacing { wait } => {
                    if let Some(pending) = wait.as_mut() {
                        ready!(pending.as_mut().poll(cx));
                        *wait = None;
                    }
                    let now = Instant::now();
                    match policy.rate.try_acquire(now) {
                        Ok(()) => {
                            if let Some(since) = this.paced_since.take() {
                                policy.stats.record_paced(now - since);
                            }
                            this.state.set(State::Ready);
                        }
                        Err(until) => {
                            this.paced_since.get_or_insert(now);
                            *wait = Some(policy.rate.wait(until));
                        }
                    }
                }
                StateProj::Ready => {
                    if this.service.is_none() {
                        // NOTE: the spare is kept before a future can reach this state: see
                        // `Backoff::call`.
                        let spare = this.shared.spare.clone_service();
                        *this.service = Some(Box::new(spare.expect("a spare before a retry")));
                    }
                    let service = this.service.as_mut().expect("set above");
                    if let Err(e) = ready!(service.poll_ready(cx)) {
                        return Poll::Ready(Err(e.into()));
                    }
                    // NOTE: `request` is always set when entering `Pacing` or `Ready`.
                    let request = this.request.take().expect("request set before an attempt");
                    if policy.max_attempts > 1 || *this.replays_left > 0 {
                        *this.request = try_clone_request(&request);
                    }
                    let future = service.call(request);
                    this.state.set(State::Called { future });
                }
                StateProj::Called { future } => {
                    let result = ready!(future.poll(cx));
                    *this.attempts += 1;
                    let backup = &*this.request;
                    let replay = || backup.as_ref().and_then(try_clone_request);
                    let (delay, next) = match result {
                        Ok(response) => {
                            let status = response.status();
                            let Some(retryable) = policy.inspect_response(
                                status,
                                response.headers(),
                                *this.retry_safe,
                            ) else {
                                let hook = match &this.shared.hook {
                                    Some(hook) if *this.replays_left > 0 => hook,
                                    _ => return Poll::Ready(Ok(response)),
                                };
                                if !hook.wants_replay(status, response.extensions()) {
                                    return Poll::Ready(Ok(response));
                                }
                                // NOTE: asked again after the attempt: a body may have found
                                // out while it was sent that it outgrew its replay cap.
                                let Some(replay) =
                                    this.request.as_ref().and_then(try_clone_request)
                                else {
                                    hook.not_replayable();
                                    return Poll::Ready(Ok(response));
                                };
                                let not_before = hook.replaying(status, response.extensions());
                                drop(response);
                                *this.replays_left -= 1;
                                // NOTE: from here on, as a new call of this layer: what the
                                // stacked `RefreshOn401` above it would make.
                                policy.budget.deposit();
                                *this.attempts = 0;
                                *this.started = Instant::now();
                                *this.request = Some(replay);
                                match not_before {
                                    Some(at) => {
                                        match this.sleep.as_mut() {
                                            Some(sleep) => sleep.as_mut().reset(at),
                                            None => *this.sleep = Some(Box::pin(sleep_until(at))),
                                        }
                                        this.state.set(State::Waiting);
                                    }
                                    None => this.state.set(State::Pacing { wait: None }),
                                }
                                continue;
                            };
                            let attempt = Attempt::Status(status);
                            let Some(planned) = policy.plan(
                                retryable,
                                attempt,
                                *this.attempts,
                                *this.started,
                                replay,
                            ) else {
                                return Poll::Ready(Ok(response));
                            };
                            let body = response.into_body();
                            *this.drain = Some(Box::pin(drain(body, policy.drain_limit)));
                            planned
                        }
                        Err(error) => {
                            let error: BoxError = error.into();
                            let Some(retryable) =
                                policy.inspect_error(error.as_ref(), *this.retry_safe)
                            else {
                                return Poll::Ready(Err(error));
                            };
                            let attempt = Attempt::Error(error.as_ref());
                            let Some(planned) = policy.plan(
                                retryable,
                                attempt,
                                *this.attempts,
                                *this.started,
                                replay,
                            ) else {
                                return Poll::Ready(Err(error));
                            };
                            planned
                        }
                    };
                    let now = Instant::now();
                    match this.sleep.as_mut() {
                        Some(sleep) => sleep.as_mut().reset(now + delay),
                        None => *this.sleep = Some(Box::pin(sleep_until(now + delay))),
                    }
                    *this.request = Some(next);
                    this.state.set(State::Waiting);
                }
                StateProj::Waiting => {
                    if let Some(drain) = this.drain.as_mut() {
                        if drain.as_mut().poll(cx).is_ready() {
                            *this.drain = None;
                        }
                    }
                    if let Some(sleep) = this.sleep.as_mut() {
                        ready!(sleep.as_mut().poll(cx));
                    }
                    // NOTE: whatever is left of the old body is dropped before the replay.
                    *this.drain = None;
                    this.state.set(State::Pacing { wait: None });
                }
            }
        }
    }
}

/// Reads up to about `limit` bytes of a discarded body so its connection can be reused.
async fn drain<B: http_body::Body>(body: B, limit: usize) {
    let mut body = std::pin::pin!(body);
    let mut read = 0usize;
    while read <= limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    read = read.saturating_add(data.remaining());
                }
            }
            _ => break,
        }
    }
}
