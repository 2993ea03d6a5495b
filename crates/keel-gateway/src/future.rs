use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use pin_project_lite::pin_project;
use tower::BoxError;

use crate::headers::{remove_hop_by_hop, remove_upstream_cookies};
use crate::{GatewayBody, PathError};
use keel_layers::auth::TokenError;
use keel_layers::error_chain::find;

pin_project! {
    /// Response future of [`Gateway`](crate::Gateway).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        Forward { #[pin] inner: F },
        Rejected { response: Option<Response<GatewayBody>> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn forward(inner: F) -> Self {
        ResponseFuture {
            kind: Kind::Forward { inner },
        }
    }

    /// The `400` for a request path that is not forwarded.
    pub(crate) fn rejected(err: PathError) -> Self {
        tracing::warn!(error = %err, "request path rejected, not forwarded");
        let response = error_response(StatusCode::BAD_REQUEST, "gateway.path.rejected", &err);
        ResponseFuture {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<F, E, ResB> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: Into<BoxError>,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<GatewayBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = match self.project().kind.project() {
            KindProj::Forward { inner } => inner,
            KindProj::Rejected { response } => {
                let response = response
                    .take()
                    .expect("ResponseFuture polled after completion");
                return Poll::Ready(Ok(response));
            }
        };
        let response = match ready!(inner.poll(cx)) {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                remove_upstream_cookies(&mut parts.headers);
                Response::from_parts(parts, body.map_err(Into::into).boxed_unsync())
            }
            Err(err) => failure_response(&err.into()),
        };
        Poll::Ready(Ok(response))
    }
}

/// The gateway's own answer when the upstream could not be asked or did not answer.
fn failure_response(err: &BoxError) -> Response<GatewayBody> {
    let (status, code, message) = if find::<tower::timeout::error::Elapsed>(err.as_ref()).is_some()
    {
        (
            StatusCode::GATEWAY_TIMEOUT,
            "gateway.upstream.timeout",
            "the upstream did not answer in time",
        )
    } else if find::<TokenError>(err.as_ref()).is_some() {
        (
            StatusCode::BAD_GATEWAY,
            "gateway.token.unavailable",
            "the gateway could not get an access token",
        )
    } else {
        (
            StatusCode::BAD_GATEWAY,
            "gateway.upstream.error",
            "the upstream request failed",
        )
    };
    tracing::warn!(status = status.as_u16(), error = %err, "{message}");
    error_response(status, code, &message)
}

/// A small JSON body that names the kind of failure (never a token or a secret).
fn error_response(
    status: StatusCode,
    code: &str,
    message: &dyn std::fmt::Display,
) -> Response<GatewayBody> {
    let body = format!(
        r#"{{"status":{},"code":"{code}","message":"{message}"}}"#,
        status.as_u16()
    );
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
