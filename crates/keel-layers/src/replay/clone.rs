use bytes::Buf;
use http::Request;
use http_body_util::{Empty, Full};

/// A request body that can produce another body with the same bytes, for another attempt.
///
/// Retrying layers call [`try_clone_body`](TryCloneBody::try_clone_body) *before* the first
/// attempt (to keep a backup) and again on the backup *after* a retryable response: a body
/// that learned during the first attempt that it cannot be replayed (it outgrew its cap)
/// answers `None` then, and the response goes back to the caller as it is.
#[diagnostic::on_unimplemented(
    message = "the request body `{Self}` cannot be replayed by keel's retrying layers",
    label = "this body type does not implement `TryCloneBody`",
    note = "put `.replay_body(cap)` (`ReplayBodyLayer::new(cap)`) above the retrying layers to make any body replayable, or send an in-memory body (`Full<Bytes>`, `Empty<Bytes>`, `String`)",
    note = "check that the HTTP client's body type matches the stack's: below `ReplayBodyLayer` it is `ReplayBody<B>`"
)]
pub trait TryCloneBody: http_body::Body + Sized {
    /// Returns a body that yields the same bytes from the start, or `None` when that is
    /// no longer possible.
    fn try_clone_body(&self) -> Option<Self>;
}

impl<D: Buf + Clone> TryCloneBody for Full<D> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D: Buf> TryCloneBody for Empty<D> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(Empty::new())
    }
}

impl TryCloneBody for String {
    fn try_clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

/// Clones a request whose body implements [`TryCloneBody`]: method, URI, version, headers,
/// extensions and body.
///
/// Returns `None` when the body cannot be replayed.
pub fn try_clone_request<B: TryCloneBody>(req: &Request<B>) -> Option<Request<B>> {
    let body = req.body().try_clone_body()?;
    let mut clone = Request::new(body);
    *clone.method_mut() = req.method().clone();
    *clone.uri_mut() = req.uri().clone();
    *clone.version_mut() = req.version();
    // NOTE: an empty map (the default) needs no clone, nor the clone's drop of the default.
    if !req.headers().is_empty() {
        *clone.headers_mut() = req.headers().clone();
    }
    *clone.extensions_mut() = req.extensions().clone();
    Some(clone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn clones_every_part_of_a_request() {
        let req = Request::post("http://example.test/x?y=1")
            .header("x-a", "b")
            .extension(7u32)
            .body(Full::new(Bytes::from_static(b"hello")))
            .unwrap();
        let clone = try_clone_request(&req).unwrap();
        assert_eq!(clone.method(), req.method());
        assert_eq!(clone.uri(), req.uri());
        assert_eq!(clone.headers(), req.headers());
        assert_eq!(clone.extensions().get::<u32>(), Some(&7));
        let bytes = clone.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "hello");
    }
}
