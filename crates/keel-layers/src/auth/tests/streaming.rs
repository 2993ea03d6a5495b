use super::*;
use crate::replay::{ReplayBody, ReplayBodyLayer};
use http_body::Frame;
use http_body_util::StreamBody;
use std::convert::Infallible;
use tokio::sync::mpsc;

type Chunk = Result<Frame<Bytes>, Infallible>;
type Channel = StreamBody<futures_util::stream::BoxStream<'static, Chunk>>;

fn channel_body() -> (mpsc::UnboundedSender<Chunk>, Channel) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (
        tx,
        StreamBody::new(Box::pin(stream) as futures_util::stream::BoxStream<'static, Chunk>),
    )
}

fn chunk(s: &str) -> Chunk {
    Ok(Frame::data(Bytes::copy_from_slice(s.as_bytes())))
}

#[tokio::test(start_paused = true)]
async fn streaming_body_is_replayed_after_a_401_that_came_before_it_was_fully_sent() {
    let (source, _) = counting_source(Duration::ZERO, None);
    let tokens = TokenCache::new(source);
    let (bearer, mut api) = bearer_stack::<ReplayBody<Channel>>(&tokens);
    let svc =
        ReplayBodyLayer::new(1024).layer(RefreshOn401Layer::new(tokens.clone()).layer(bearer));

    let (tx, body) = channel_body();
    tx.send(chunk("part-1;")).unwrap();
    let request = Request::post("/upload").body(body).unwrap();
    let call = tokio::spawn(svc.oneshot(request));

    // First attempt: the server reads one chunk and answers 401 before the rest is sent.
    let (req, respond) = api.next_request().await.unwrap();
    let mut first = req.into_body();
    let data = first.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(data, "part-1;");
    respond.send_response(empty(StatusCode::UNAUTHORIZED));
    drop(first);

    // The replay gets every byte once: the kept chunk, then the rest of the original.
    let (req, respond) = api.next_request().await.unwrap();
    assert_eq!(auth_header(&req).as_deref(), Some("Bearer token-2"));
    tx.send(chunk("part-2;")).unwrap();
    tx.send(chunk("part-3")).unwrap();
    drop(tx);
    let body = req.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "part-1;part-2;part-3");
    respond.send_response(empty(StatusCode::OK));
    assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn body_over_the_replay_cap_returns_the_401_as_is() {
    let (source, _) = counting_source(Duration::ZERO, None);
    let tokens = TokenCache::new(source);
    let (bearer, mut api) = bearer_stack::<ReplayBody<Channel>>(&tokens);
    let refresh = RefreshOn401Layer::new(tokens.clone());
    let stats = refresh.stats();
    let svc = ReplayBodyLayer::new(8).layer(refresh.layer(bearer));

    let (tx, body) = channel_body();
    tx.send(chunk("0123456789")).unwrap();
    tx.send(chunk("abcdef")).unwrap();
    drop(tx);
    let call = tokio::spawn(svc.oneshot(Request::post("/upload").body(body).unwrap()));
    let (req, respond) = api.next_request().await.unwrap();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        body, "0123456789abcdef",
        "the first attempt still sends everything"
    );
    respond.send_response(json(StatusCode::UNAUTHORIZED, "denied".into()));

    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_no_more_requests(&mut api).await;
    assert_eq!(stats.replays(), 0);
    assert_eq!(stats.not_replayable(), 1);
    assert_eq!(tokens.stats().invalidations, 0);
}
