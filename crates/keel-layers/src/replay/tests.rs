use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, StreamBody};
use std::convert::Infallible;
use tokio::sync::mpsc;
use tokio_stream_shim::ChannelStream;

use super::*;

type Chunk = Result<Frame<Bytes>, Infallible>;

/// A streaming body fed by a channel, like a request body that is still being produced.
fn channel_body() -> (
    mpsc::UnboundedSender<Chunk>,
    StreamBody<ChannelStream<Chunk>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, StreamBody::new(ChannelStream(rx)))
}

mod tokio_stream_shim {
    use futures_util::Stream;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::sync::mpsc;

    pub(super) struct ChannelStream<T>(pub(super) mpsc::UnboundedReceiver<T>);

    impl<T> Stream for ChannelStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

fn data(s: &'static str) -> Chunk {
    Ok(Frame::data(Bytes::from_static(s.as_bytes())))
}

async fn next_data<B>(body: &mut B) -> Bytes
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    body.frame().await.unwrap().unwrap().into_data().unwrap()
}

async fn collect<B>(body: B) -> Result<Bytes, B::Error>
where
    B: Body<Data = Bytes>,
{
    Ok(body.collect().await?.to_bytes())
}

#[tokio::test]
async fn replay_yields_the_same_bytes_as_the_first_attempt() {
    let (tx, original) = channel_body();
    for s in ["a", "bc", "def"] {
        tx.send(data(s)).unwrap();
    }
    drop(tx);
    let first = ReplayBody::new(original, 1024);
    let backup = first.try_clone_body().unwrap();
    assert_eq!(collect(first).await.unwrap(), "abcdef");
    let replay = backup.try_clone_body().unwrap();
    assert_eq!(collect(replay).await.unwrap(), "abcdef");
    assert_eq!(collect(backup).await.unwrap(), "abcdef");
}

#[tokio::test]
async fn replay_after_a_partial_first_read_continues_with_the_rest_without_duplicates() {
    let (tx, original) = channel_body();
    tx.send(data("one ")).unwrap();
    tx.send(data("two ")).unwrap();
    let mut first = ReplayBody::new(original, 1024);
    let backup = first.try_clone_body().unwrap();
    // The server answers after reading only the first chunk; the attempt is abandoned.
    assert_eq!(next_data(&mut first).await, "one ");
    drop(first);

    let mut replay = backup.try_clone_body().unwrap();
    assert_eq!(next_data(&mut replay).await, "one ");
    // "two " was never read by the first attempt: the replay reads it from the original.
    assert_eq!(next_data(&mut replay).await, "two ");
    tx.send(data("three")).unwrap();
    drop(tx);
    assert_eq!(collect(replay).await.unwrap(), "three");
    // And a later replay yields every byte exactly once.
    assert_eq!(collect(backup).await.unwrap(), "one two three");
}

#[tokio::test]
async fn replay_while_the_first_attempt_is_still_reading_shares_the_original() {
    let (tx, original) = channel_body();
    let mut first = ReplayBody::new(original, 1024);
    let mut replay = first.try_clone_body().unwrap();

    // Both wait on the original; whichever polled last, both must wake up.
    let mut first_next = tokio_test::task::spawn(async { next_data(&mut first).await });
    let mut replay_next = tokio_test::task::spawn(async { next_data(&mut replay).await });
    assert!(first_next.poll().is_pending());
    assert!(replay_next.poll().is_pending());
    tx.send(data("x")).unwrap();
    assert!(first_next.is_woken());
    assert!(replay_next.is_woken());
    assert_eq!(tokio_test::assert_ready!(replay_next.poll()), "x");
    assert_eq!(tokio_test::assert_ready!(first_next.poll()), "x");
    drop((first_next, replay_next));
    tx.send(data("y")).unwrap();
    drop(tx);
    assert_eq!(collect(first).await.unwrap(), "y");
    assert_eq!(collect(replay).await.unwrap(), "y");
}

#[tokio::test]
async fn body_over_the_cap_is_streamed_once_and_not_replayable() {
    let (tx, original) = channel_body();
    for s in ["12345", "67890", "abc"] {
        tx.send(data(s)).unwrap();
    }
    drop(tx);
    let first = ReplayBody::new(original, 8);
    let backup = first.try_clone_body().unwrap();
    // The first attempt still gets every byte.
    assert_eq!(collect(first).await.unwrap(), "1234567890abc");
    assert!(backup.try_clone_body().is_none());
    assert!(!backup.is_replayable());
    // The backup taken before the cap was hit refuses to send a partial body.
    let err = collect(backup).await.unwrap_err();
    assert!(
        matches!(err, ReplayError::CapExceeded { cap: 8 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn body_exactly_at_the_cap_is_replayable() {
    let body = ReplayBody::new(Full::new(Bytes::from_static(b"12345678")), 8);
    let backup = body.try_clone_body().unwrap();
    assert_eq!(collect(body).await.unwrap(), "12345678");
    assert_eq!(
        collect(backup.try_clone_body().unwrap()).await.unwrap(),
        "12345678"
    );
}

#[test]
fn body_announcing_a_size_over_the_cap_is_never_replayable() {
    let body = ReplayBody::new(Full::new(Bytes::from_static(b"123456789")), 8);
    assert!(body.try_clone_body().is_none());
}

#[tokio::test]
async fn trailers_are_replayed() {
    let (tx, original) = channel_body();
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().unwrap());
    tx.send(data("body")).unwrap();
    tx.send(Ok(Frame::trailers(trailers.clone()))).unwrap();
    drop(tx);
    let first = ReplayBody::new(original, 64);
    let backup = first.try_clone_body().unwrap();
    let collected = first.collect().await.unwrap();
    assert_eq!(collected.trailers(), Some(&trailers));
    let replayed = backup.collect().await.unwrap();
    assert_eq!(replayed.trailers(), Some(&trailers));
    assert_eq!(replayed.to_bytes(), "body");
}

#[tokio::test]
async fn size_hint_and_end_of_stream_follow_the_original() {
    let body = ReplayBody::new(Full::new(Bytes::from_static(b"hello")), 64);
    assert_eq!(body.size_hint().exact(), Some(5));
    assert!(!body.is_end_stream());
    let backup = body.try_clone_body().unwrap();
    let mut body = body;
    assert_eq!(next_data(&mut body).await, "hello");
    assert_eq!(body.size_hint().exact(), Some(0));
    assert!(body.is_end_stream());
    assert_eq!(backup.size_hint().exact(), Some(5));
    assert!(!backup.is_end_stream());

    let empty = ReplayBody::new(http_body_util::Empty::<Bytes>::new(), 64);
    assert!(empty.is_end_stream());
    assert!(empty.try_clone_body().unwrap().is_end_stream());
}

#[tokio::test]
async fn size_hint_counts_what_each_body_yielded_mid_replay_and_past_the_cap() {
    // Three chunks of 2 bytes, announced as at most 6 (so not known to be over the cap).
    let (tx, stream) = channel_body();
    let hinted = WithHint(stream, 6);
    for chunk in ["ab", "cd", "ef"] {
        tx.send(Ok(Frame::data(Bytes::from_static(chunk.as_bytes()))))
            .unwrap();
    }
    drop(tx);
    let mut original = ReplayBody::new(hinted, 4);
    let mut clone = original.try_clone_body().unwrap();
    assert_eq!(next_data(&mut original).await, "ab");
    assert_eq!(original.size_hint().upper(), Some(4));
    // The clone replays the kept chunk: 2 of 6 yielded.
    assert_eq!(next_data(&mut clone).await, "ab");
    assert_eq!(clone.size_hint().upper(), Some(4));
    // The clone reads on from the original, then past the cap of 4: it goes on alone.
    assert_eq!(next_data(&mut clone).await, "cd");
    assert_eq!(clone.size_hint().upper(), Some(2));
    assert_eq!(
        original.size_hint().upper(),
        Some(4),
        "the original yielded 2"
    );
    assert_eq!(next_data(&mut clone).await, "ef");
    assert!(!clone.is_replayable());
    assert_eq!(clone.size_hint().upper(), Some(0));
}

/// A body announcing at most this many bytes.
struct WithHint<B>(B, u64);

impl<B: Body + Unpin> Body for WithHint<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.0).poll_frame(cx)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let mut hint = http_body::SizeHint::new();
        hint.set_upper(self.1);
        hint
    }
}

#[test]
fn a_replay_body_is_sixteen_bytes() {
    // NOTE: see the note on `ReplayBody`: hyper-util copies the request several times.
    assert_eq!(
        std::mem::size_of::<ReplayBody<http_body_util::Empty<Bytes>>>(),
        16
    );
    assert!(std::mem::size_of::<http::Request<ReplayBody<Full<Bytes>>>>() <= 240);
}

/// A body with no data (`size_hint` exactly 0), optionally a trailers frame, that records
/// when it is dropped.
struct ZeroLength {
    trailers: Option<HeaderMap>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Body for ZeroLength {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Chunk>> {
        std::task::Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.trailers.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(0)
    }
}

impl Drop for ZeroLength {
    fn drop(&mut self) {
        self.dropped
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn body_that_ended_before_it_was_wrapped_is_released_and_replays_empty() {
    let dropped = std::sync::Arc::default();
    let body = ReplayBody::new(
        ZeroLength {
            trailers: None,
            dropped: std::sync::Arc::clone(&dropped),
        },
        64,
    );
    assert!(
        dropped.load(std::sync::atomic::Ordering::SeqCst),
        "an ended original is not kept"
    );
    assert!(body.is_replayable());
    let backup = body.try_clone_body().unwrap();
    for body in [body, backup] {
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers(), None);
        assert!(collected.to_bytes().is_empty());
    }
}

#[tokio::test]
async fn zero_length_body_with_trailers_still_replays_them() {
    let dropped = std::sync::Arc::default();
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().unwrap());
    let first = ReplayBody::new(
        ZeroLength {
            trailers: Some(trailers.clone()),
            dropped: std::sync::Arc::clone(&dropped),
        },
        64,
    );
    assert!(!dropped.load(std::sync::atomic::Ordering::SeqCst));
    assert!(!first.is_end_stream());
    let backup = first.try_clone_body().unwrap();
    assert_eq!(first.collect().await.unwrap().trailers(), Some(&trailers));
    assert_eq!(backup.collect().await.unwrap().trailers(), Some(&trailers));
}

#[tokio::test]
async fn layer_wraps_request_bodies() {
    use tower::{service_fn, Layer, ServiceExt};
    let svc = ReplayBodyLayer::new(16).layer(service_fn(
        |req: http::Request<ReplayBody<Full<Bytes>>>| async move {
            let backup = try_clone_request(&req).unwrap();
            let first = collect(req.into_body()).await?;
            let second = collect(backup.into_body()).await?;
            Ok::<_, ReplayError>((first, second))
        },
    ));
    let req = http::Request::new(Full::new(Bytes::from_static(b"payload")));
    let (first, second) = svc.oneshot(req).await.unwrap();
    assert_eq!(first, "payload");
    assert_eq!(second, "payload");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    type Iter = futures_util::stream::Iter<std::vec::IntoIter<Chunk>>;

    fn body_of(chunks: &[Vec<u8>]) -> StreamBody<Iter> {
        let frames: Vec<Chunk> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    /// Polls `fut` once: every body here is always ready.
    fn now<T>(fut: impl std::future::Future<Output = T>) -> T {
        let mut task = tokio_test::task::spawn(fut);
        match task.poll() {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("an always-ready body was pending"),
        }
    }

    proptest! {
        /// However the first attempt and the replays interleave and stop early, every replay
        /// yields the original bytes exactly once each, or the body is not replayable and
        /// nothing partial is sent.
        #[test]
        fn every_replay_yields_the_original_bytes_once(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..12),
            cap in 0usize..200,
            first_reads in 0usize..14,
            second_reads in 0usize..14,
        ) {
            let original: Vec<u8> = chunks.concat();
            let mut first = ReplayBody::new(body_of(&chunks), cap);
            let backup = first.try_clone_body().unwrap();
            let mut partial = Vec::new();
            for _ in 0..first_reads {
                match now(first.frame()) {
                    Some(Ok(frame)) => partial.extend_from_slice(&frame.into_data().unwrap()),
                    Some(Err(e)) => panic!("first attempt failed: {e}"),
                    None => break,
                }
            }
            prop_assert!(original.starts_with(&partial));
            drop(first);

            let over_cap = partial.len() > cap;
            match backup.try_clone_body() {
                None => prop_assert!(over_cap, "not replayable though under the cap"),
                Some(mut second) => {
                    prop_assert!(!over_cap);
                    // A second attempt that also stops early ...
                    for _ in 0..second_reads {
                        if now(second.frame()).is_none() {
                            break;
                        }
                    }
                    drop(second);
                    // ... and a third that reads to the end.
                    match backup.try_clone_body() {
                        Some(third) => match now(collect(third)) {
                            Ok(bytes) => prop_assert_eq!(bytes.as_ref(), original.as_slice()),
                            Err(ReplayError::CapExceeded { .. }) => prop_assert!(original.len() > cap),
                            Err(e) => panic!("unexpected error {e}"),
                        },
                        None => prop_assert!(original.len() > cap),
                    }
                }
            }
        }
    }
}
