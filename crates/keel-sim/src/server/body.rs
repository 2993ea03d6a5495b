//! The response body: whole, or cut short with an error so hyper aborts the connection.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Error ending a deliberately truncated body.
#[derive(Debug, thiserror::Error)]
#[error("response body truncated by fault injection")]
pub(crate) struct Truncated;

/// A response body of the simulator.
#[derive(Debug)]
pub(crate) enum SimBody {
    /// All of it.
    Full(Option<Bytes>),
    /// This part, then an error (the `Content-Length` header promises more).
    Cut(Option<Bytes>),
}

impl SimBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        SimBody::Full(Some(bytes.into()))
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = Truncated;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Truncated>>> {
        let this = self.get_mut();
        Poll::Ready(match this {
            SimBody::Full(data) => data.take().map(|d| Ok(Frame::data(d))),
            SimBody::Cut(data) => match data.take() {
                Some(d) => Some(Ok(Frame::data(d))),
                None => Some(Err(Truncated)),
            },
        })
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, SimBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            SimBody::Cut(_) => SizeHint::default(),
        }
    }
}
