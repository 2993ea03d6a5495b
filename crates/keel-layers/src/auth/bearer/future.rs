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
        sent: Option<TokenId>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Token {
            fetch: FetchFuture,
            pending: Option<(S, Request<B>)>,
        },
        Called {
            #[pin]
            future: S::Future,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn called(future: S::Future, sent: Option<TokenId>) -> Self {
        ResponseFuture {
            state: State::Called { future },
            sent,
        }
    }

    pub(super) fn fetching(fetch: FetchFuture, ready: S, req: Request<B>) -> Self {
        ResponseFuture {
            state: State::Token {
                fetch,
                pending: Some((ready, req)),
            },
            sent: None,
        }
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<ResB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Token { fetch, pending } => {
                    let token = ready!(fetch.as_mut().poll(cx))?;
                    let (mut service, mut req) = pending.take().expect("polled after completion");
                    req.headers_mut()
                        .insert(AUTHORIZATION, token.header_value().clone());
                    *this.sent = Some(token.id());
                    let future = service.call(req);
                    this.state.set(State::Called { future });
                }
                StateProj::Called { future } => {
                    let mut response = ready!(future.poll(cx)).map_err(Into::into)?;
                    // NOTE: only a 401 carries the id: `RefreshOn401` reads it only then, and
                    // an extension costs an allocation on every response.
                    if response.status() == StatusCode::UNAUTHORIZED {
                        if let Some(sent) = *this.sent {
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
        f.debug_struct("ResponseFuture")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}
