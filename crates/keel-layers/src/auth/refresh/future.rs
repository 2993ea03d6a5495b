use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::{sleep_until, Sleep};
use tower::Service;

use super::service::Shared;
use crate::replay::{try_clone_request, TryCloneBody};

pin_project! {
    /// Response future of [`RefreshOn401`](super::RefreshOn401).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, Request<B>, S>,
        backup: Option<Request<B>>,
        replays_left: u32,
        shared: Arc<Shared<S>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, R, S> {
        Called { #[pin] future: F },
        // NOTE: the replay lives in this variant, not beside `state`: it then shares the
        // space of the (large) inner future instead of adding to it. The service, cloned
        // from the shared spare for this replay, is boxed for the same reason.
        WaitingForReady { replay: Option<R>, service: Box<S>, not_before: Option<Pin<Box<Sleep>>> },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn new(
        future: S::Future,
        backup: Option<Request<B>>,
        replays_left: u32,
        shared: Arc<Shared<S>>,
    ) -> Self {
        ResponseFuture {
            state: State::Called { future },
            backup,
            replays_left,
            shared,
        }
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    B: TryCloneBody,
{
    type Output = Result<Response<ResB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let response = ready!(future.poll(cx))?;
                    if *this.replays_left == 0 {
                        return Poll::Ready(Ok(response));
                    }
                    let refresh = &this.shared.refresh;
                    let Some(rejected) = refresh.rejected(response.status(), response.extensions())
                    else {
                        return Poll::Ready(Ok(response));
                    };
                    // NOTE: asked again after the attempt: a body may have found out while it
                    // was sent that it outgrew its replay cap.
                    let Some(replay) = this.backup.as_ref().and_then(try_clone_request) else {
                        refresh.not_replayable();
                        return Poll::Ready(Ok(response));
                    };
                    // NOTE: the spare is kept whenever a backup is: see `RefreshOn401::call`.
                    let service = this.shared.spare.clone_service();
                    let service = Box::new(service.expect("a spare with a backup"));
                    drop(response);
                    let not_before = refresh
                        .replaying(rejected)
                        .map(|t| Box::pin(sleep_until(t)));
                    *this.replays_left -= 1;
                    if *this.replays_left == 0 {
                        *this.backup = None;
                    }
                    this.state.set(State::WaitingForReady {
                        replay: Some(replay),
                        service,
                        not_before,
                    });
                }
                StateProj::WaitingForReady {
                    replay,
                    service,
                    not_before,
                } => {
                    if let Some(sleep) = not_before.as_mut() {
                        ready!(sleep.as_mut().poll(cx));
                        *not_before = None;
                    }
                    ready!(service.poll_ready(cx))?;
                    let request = replay.take().expect("a replay is pending");
                    let future = service.call(request);
                    this.state.set(State::Called { future });
                }
            }
        }
    }
}

impl<S, B> std::fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("replays_left", &self.replays_left)
            .finish_non_exhaustive()
    }
}
