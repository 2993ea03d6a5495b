use tower::Layer;

use super::ReplayBodyService;

/// Layer that applies [`ReplayBodyService`], wrapping every request body in a
/// [`ReplayBody`](super::ReplayBody) that keeps up to `cap` bytes for replays.
#[derive(Debug, Clone, Copy)]
pub struct ReplayBodyLayer {
    cap: usize,
}

impl ReplayBodyLayer {
    /// Keeps up to `cap` bytes of each request body; longer bodies are sent once, never replayed.
    pub fn new(cap: usize) -> Self {
        ReplayBodyLayer { cap }
    }
}

impl<S> Layer<S> for ReplayBodyLayer {
    type Service = ReplayBodyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReplayBodyService::new(inner, self.cap)
    }
}
