//! The assembled stack over a stand-in transport, in paused time.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use secrecy::SecretString;

use super::stack::assemble;
use crate::{Client, ConversationQuery, Credentials, Environment};

type Chunks = StreamBody<stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

/// A details API whose page bodies arrive in 10 chunks, 10 ms apart, and only while the
/// body is being read (like a socket whose buffers are full).
fn client(total: usize, timeout: Duration) -> Client {
    let token = tower::service_fn(|_: Request<Full<Bytes>>| async {
        let body = r#"{"access_token":"t","token_type":"bearer","expires_in":3600}"#;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
    });
    let api = tower::service_fn(move |req: Request<Full<Bytes>>| async move {
        let q: serde_json::Value =
            serde_json::from_slice(&req.into_body().collect().await.unwrap().to_bytes()).unwrap();
        let size = q["paging"]["pageSize"].as_u64().unwrap() as usize;
        let number = q["paging"]["pageNumber"].as_u64().unwrap() as usize;
        let ids: Vec<String> = ((number - 1) * size..(number * size).min(total))
            .map(|i| format!(r#"{{"conversationId":"c-{i:03}"}}"#))
            .collect();
        let json = format!(
            r#"{{"totalHits":{total},"conversations":[{}]}}"#,
            ids.join(",")
        );
        let bytes = Bytes::from(json);
        let step = bytes.len().div_ceil(10);
        let chunks: Vec<Bytes> = (0..bytes.len())
            .step_by(step)
            .map(|i| bytes.slice(i..(i + step).min(bytes.len())))
            .collect();
        let body = stream::iter(chunks)
            .then(|chunk| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok::<_, Infallible>(Frame::data(chunk))
            })
            .boxed();
        Ok::<_, Infallible>(Response::new(Chunks::new(body)))
    });
    let env = Environment::custom("http://127.0.0.1:9", "http://127.0.0.1:9").unwrap();
    let creds = Credentials::new("id", SecretString::from("secret"));
    let builder = Client::builder(env, creds)
        .page_size(10)
        .prefetch(2)
        .request_timeout(timeout)
        .split_policy(crate::details::SplitPolicy {
            max_part: None,
            ..Default::default()
        });
    assemble(builder, token, api).unwrap()
}

fn query() -> ConversationQuery {
    ConversationQuery::new("2026-01-01/2026-01-02".parse().unwrap())
}

#[tokio::test(start_paused = true)]
async fn prefetched_requests_progress_while_the_consumer_is_busy() {
    let client = client(80, Duration::from_millis(500));
    let mut export = client.conversation_details(query());
    let mut ids = Vec::new();
    while let Some(page) = export.try_next().await.unwrap() {
        ids.extend(page.conversations.iter().map(|c| c.get().to_owned()));
        // a consumer busy writing the page, for longer than a request may take
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let want: Vec<String> = (0..80)
        .map(|i| format!(r#"{{"conversationId":"c-{i:03}"}}"#))
        .collect();
    assert_eq!(ids, want);
}

#[tokio::test(start_paused = true)]
async fn a_page_slower_than_the_timeout_is_a_transport_error() {
    let client = client(30, Duration::from_millis(50));
    let err = client
        .conversation_details(query())
        .try_next()
        .await
        .unwrap_err();
    assert!(matches!(err, crate::Error::Transport { .. }), "{err:?}");
}
