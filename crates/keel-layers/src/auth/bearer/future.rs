use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{BoxError, Service};

use crate::auth::{FetchFuture, TokenId};

pin_project! {
    /// Response future of [`Bearer`](super::Bearer).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        // NOTE: boxed, so the fast path (a cached token) pays for a future of the inner
        // service's size only; this box is allocated only when a token must be fetched.
        Token {
            pending: Box<Pending<S, B>>,
        },
        Called {
            #[pin]
            future: S::Future,
            sent: Option<TokenId>,
        },
    }
}

/// The slow path: a token fetch, then the ready inner service and the request to send.
struct Pending<S, B> {
    fetch: FetchFuture,
    call: Option<(S, Request<B>)>,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn called(future: S::Future, sent: Option<TokenId>) -> Self {
        ResponseFuture {
            state: State::Called { future, sent },
        }
    }

    pub(super) fn fetching(fetch: FetchFuture, ready: S, req: Request<B>) -> Self {
        ResponseFuture {
            state: State::Token {
                pending: Box::new(Pending {
                    fetch,
                    call: Some((ready, req)),
                }),
            },
        }
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<ResB>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Token { pending } => {
                    let token = ready!(pending.fetch.as_mut().poll(cx))?;
                    let (mut service, mut req) =
                        pending.call.take().expect("polled after completion");
                    req.headers_mut()
                        .insert(AUTHORIZATION, token.header_value().clone());
                    let future = service.call(req);
                    this.state.set(State::Called {
                        future,
                        sent: Some(token.id()),
                    });
                }
                StateProj::Called { future, sent } => {
                    let mut response = ready!(future.poll(cx)).map_err(Into::into)?;
                    // NOTE: only a 401 carries the id: `RefreshOn401` reads it only then, and
                    // an extension costs an allocation on every response.
                    if response.status() == StatusCode::UNAUTHORIZED {
                        if let Some(sent) = *sent {
                            response.extensions_mut().insert(sent);
                        }
                    }
                    return Poll::Ready(Ok(response));
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
        let (state, sent) = match &self.state {
            State::Token { .. } => ("fetching a token", None),
            State::Called { sent, .. } => ("called", *sent),
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("sent", &sent)
            .finish_non_exhaustive()
    }
}
