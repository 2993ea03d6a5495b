use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tower::BoxError;

use super::TryCloneBody;

/// A request body that keeps up to `cap` bytes of what it streams, so that it can be sent again.
///
/// The first attempt streams the original body and keeps each data chunk it passes on (the
/// [`Bytes`] handles are shared, not copied). A clone made with
/// [`try_clone_body`](TryCloneBody::try_clone_body) first yields the kept chunks, then, if no
/// attempt has read the original to its end yet, continues with the rest of it: every clone
/// yields exactly the original bytes, once each, in order. Trailers are kept and replayed.
///
/// Once the original yields more than `cap` bytes (or announces a larger size up front) the
/// kept chunks are dropped and the body is no longer replayable:
/// [`try_clone_body`](TryCloneBody::try_clone_body) answers `None` and a clone made earlier
/// fails with [`ReplayError::CapExceeded`] instead of sending a partial body.
///
/// # Clone
///
/// `ReplayBody` is deliberately not `Clone`; clones come from `try_clone_body`. All clones
/// share one state behind an `Arc`, which holds the original body and the kept chunks. A
/// body that is already at its end when wrapped (such as `Empty`, or the body of a `GET`)
/// needs no shared state: it is dropped at once, and the `ReplayBody` and its clones are
/// empty bodies that allocate nothing.
pub struct ReplayBody<B> {
    /// `None` when the original was empty and ended when wrapped.
    shared: Option<Arc<Shared<B>>>,
    /// Where this body is in the kept chunks, and whether it sent the trailers.
    cursor: Cursor,
    /// Which clone this is (0: the original); two clones of one body would need 2^32 clones
    /// of it to share an id.
    id: u32,
}

// NOTE: a `ReplayBody` is 16 bytes: every move of a request through hyper-util (into its
// dispatch channel and back) copies the whole `Request`, and with this body a request is 240
// bytes (the parts are 224), so the channel's message (the request and a 16-byte callback)
// stays within 256 bytes, the largest copy memcpy does without a loop. Hence the packed
// cursor, and the count of bytes yielded worked out (under the lock, in `size_hint`) rather
// than stored.

/// Index of the next kept chunk a body yields (below [`MAX_KEPT_CHUNKS`]), and in the top bit
/// whether it sent the trailers.
#[derive(Clone, Copy, Default)]
struct Cursor(u32);

/// Past this many chunks a body is not kept any more (as if over its cap), so a chunk index
/// fits a [`Cursor`].
const MAX_KEPT_CHUNKS: usize = (1 << 31) - 1;

impl Cursor {
    const TRAILERS_SENT: u32 = 1 << 31;

    fn pos(self) -> usize {
        (self.0 & !Self::TRAILERS_SENT) as usize
    }

    fn advance(&mut self) {
        self.0 += 1;
    }

    fn trailers_sent(self) -> bool {
        self.0 & Self::TRAILERS_SENT != 0
    }

    fn set_trailers_sent(&mut self) {
        self.0 |= Self::TRAILERS_SENT;
    }
}

/// Errors of a [`ReplayBody`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The original body outgrew the replay cap while another attempt was reading it, so this
    /// copy cannot be completed.
    #[error("request body exceeded the replay cap of {cap} bytes and cannot be replayed")]
    CapExceeded {
        /// The configured cap, in bytes.
        cap: usize,
    },
    /// The original body failed during an earlier attempt.
    #[error("the original request body failed during an earlier attempt")]
    OriginalFailed,
    /// The original body failed.
    #[error("request body failed")]
    Body(#[source] BoxError),
}

struct Shared<B> {
    state: Mutex<State<B>>,
    /// Made on the first poll of the original, so a body that is never sent costs one
    /// allocation (this `Shared`), not two.
    fanout: OnceLock<Fanout>,
    cap: usize,
    next_id: AtomicU32,
    hint: SizeHint,
}

struct State<B> {
    /// The original body; `None` once it ended or failed.
    original: Option<Pin<Box<B>>>,
    /// Chunks read from the original so far, while under the cap.
    kept: Vec<Bytes>,
    kept_len: usize,
    trailers: Option<HeaderMap>,
    /// The original yielded its end.
    ended: bool,
    failed: bool,
    /// Set once the cap was exceeded: only the body with this id may go on reading.
    capped_reader: Option<u32>,
    /// Data bytes the capped reader has yielded, for its `size_hint`.
    capped_yielded: u64,
}

/// The waker the original is polled with, and the bodies it wakes.
struct Fanout {
    wakers: Arc<WakerList>,
    /// Wakes everything in `wakers`.
    waker: Waker,
}

impl Fanout {
    fn new() -> Self {
        let wakers = Arc::<WakerList>::default();
        Fanout {
            waker: Waker::from(Arc::clone(&wakers)),
            wakers,
        }
    }
}

/// Wakes every body that waits on the shared original, whichever of them polled it last.
#[derive(Default)]
struct WakerList(Mutex<Vec<Waker>>);

impl Wake for WakerList {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let wakers = std::mem::take(&mut *lock(&self.0));
        wakers.into_iter().for_each(Waker::wake);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B: Body> ReplayBody<B> {
    /// Wraps `body`, keeping up to `cap` bytes of it for replays.
    ///
    /// A body whose `size_hint` already says it is longer than `cap` is never replayable.
    pub fn new(body: B, cap: usize) -> Self {
        let hint = body.size_hint();
        if hint.exact() == Some(0) && body.is_end_stream() {
            return ReplayBody {
                shared: None,
                cursor: Cursor::default(),
                id: 0,
            };
        }
        let too_big = hint.lower() > cap as u64;
        let state = State {
            original: Some(Box::pin(body)),
            kept: Vec::new(),
            kept_len: 0,
            trailers: None,
            ended: false,
            failed: false,
            capped_reader: too_big.then_some(0),
            capped_yielded: 0,
        };
        ReplayBody {
            shared: Some(Arc::new(Shared {
                state: Mutex::new(state),
                fanout: OnceLock::new(),
                cap,
                next_id: AtomicU32::new(1),
                hint,
            })),
            cursor: Cursor::default(),
            id: 0,
        }
    }

    /// Whether this body can still be replayed (the original has not outgrown the cap).
    pub fn is_replayable(&self) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|shared| lock(&shared.state).capped_reader.is_none())
    }
}

impl<B> TryCloneBody for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    fn try_clone_body(&self) -> Option<Self> {
        if !self.is_replayable() {
            return None;
        }
        Some(ReplayBody {
            shared: self.shared.clone(),
            cursor: Cursor::default(),
            id: self
                .shared
                .as_ref()
                .map_or(0, |shared| shared.next_id.fetch_add(1, Ordering::Relaxed)),
        })
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = ReplayError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ReplayError>>> {
        let this = self.get_mut();
        let Some(shared) = this.shared.clone() else {
            return Poll::Ready(None);
        };
        let state = lock(&shared.state);
        if let Some(reader) = state.capped_reader {
            if reader != this.id {
                return Poll::Ready(Some(Err(ReplayError::CapExceeded { cap: shared.cap })));
            }
        } else if let Some(chunk) = state.kept.get(this.cursor.pos()) {
            let chunk = chunk.clone();
            this.cursor.advance();
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if state.failed {
            return Poll::Ready(Some(Err(ReplayError::OriginalFailed)));
        }
        if state.ended {
            return Poll::Ready(this.take_trailers(&state).map(Ok));
        }
        drop(state);
        this.poll_original(&shared, cx)
    }

    fn is_end_stream(&self) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        let state = lock(&shared.state);
        if state.capped_reader.is_some_and(|r| r != self.id) || state.failed {
            return false;
        }
        let replayed_all = state.capped_reader.is_some() || self.cursor.pos() >= state.kept.len();
        if !replayed_all {
            return false;
        }
        if state.ended {
            return state.trailers.is_none() || self.cursor.trailers_sent();
        }
        state.original.as_ref().is_some_and(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let Some(shared) = &self.shared else {
            return SizeHint::with_exact(0);
        };
        let yielded = {
            let state = lock(&shared.state);
            match state.capped_reader {
                Some(reader) if reader == self.id => state.capped_yielded,
                // NOTE: a body that may not read on fails on its next poll.
                Some(_) => 0,
                None => {
                    let pos = self.cursor.pos().min(state.kept.len());
                    state.kept[..pos].iter().map(|c| c.len() as u64).sum()
                }
            }
        };
        let hint = &shared.hint;
        let mut out = SizeHint::new();
        out.set_lower(hint.lower().saturating_sub(yielded));
        if let Some(upper) = hint.upper() {
            out.set_upper(upper.saturating_sub(yielded));
        }
        out
    }
}

impl<B> ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    fn take_trailers(&mut self, state: &State<B>) -> Option<Frame<Bytes>> {
        if self.cursor.trailers_sent() {
            return None;
        }
        self.cursor.set_trailers_sent();
        state.trailers.clone().map(Frame::trailers)
    }

    fn poll_original(
        &mut self,
        shared: &Shared<B>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ReplayError>>> {
        let fanout = shared.fanout.get_or_init(Fanout::new);
        {
            let mut wakers = lock(&fanout.wakers.0);
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
        }
        let mut state = lock(&shared.state);
        let Some(original) = state.original.as_mut() else {
            // NOTE: unreachable in practice: `original` is only taken together with setting
            // `ended` or `failed`, both checked by the caller under the same lock.
            return Poll::Ready(None);
        };
        let mut fanout = Context::from_waker(&fanout.waker);
        let frame = match original.as_mut().poll_frame(&mut fanout) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => {
                state.failed = true;
                state.original = None;
                return Poll::Ready(Some(Err(ReplayError::Body(e.into()))));
            }
            Poll::Ready(None) => {
                state.ended = true;
                state.original = None;
                return Poll::Ready(self.take_trailers(&state).map(Ok));
            }
        };
        let frame = match frame.into_data() {
            Ok(mut data) => {
                let chunk = data.copy_to_bytes(data.remaining());
                if state.capped_reader.is_some() {
                    state.capped_yielded += chunk.len() as u64;
                } else {
                    let over = state.kept_len + chunk.len() > shared.cap
                        || state.kept.len() >= MAX_KEPT_CHUNKS;
                    if over {
                        state.capped_reader = Some(self.id);
                        // NOTE: a reader of the original has yielded every kept chunk first.
                        state.capped_yielded = (state.kept_len + chunk.len()) as u64;
                        state.kept = Vec::new();
                        tracing::debug!(
                            cap = shared.cap,
                            "request body exceeded the replay cap; it will not be replayed"
                        );
                    } else {
                        state.kept_len += chunk.len();
                        state.kept.push(chunk.clone());
                        self.cursor.advance();
                    }
                }
                Frame::data(chunk)
            }
            Err(frame) => match frame.into_trailers() {
                Ok(trailers) => {
                    if state.capped_reader.is_none() {
                        state.trailers = Some(trailers.clone());
                    }
                    self.cursor.set_trailers_sent();
                    Frame::trailers(trailers)
                }
                // NOTE: a frame that is neither data nor trailers (none exist in http-body 1)
                // is passed on and not replayed.
                Err(other) => other.map_data(|mut d| d.copy_to_bytes(d.remaining())),
            },
        };
        Poll::Ready(Some(Ok(frame)))
    }
}

impl<B> std::fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(shared) = &self.shared else {
            return f
                .debug_struct("ReplayBody")
                .field("kept_bytes", &0)
                .field("replayable", &true)
                .field("position", &self.cursor.pos())
                .finish_non_exhaustive();
        };
        let state = lock(&shared.state);
        f.debug_struct("ReplayBody")
            .field("cap", &shared.cap)
            .field("kept_bytes", &state.kept_len)
            .field("replayable", &state.capped_reader.is_none())
            .field("position", &self.cursor.pos())
            .finish()
    }
}
