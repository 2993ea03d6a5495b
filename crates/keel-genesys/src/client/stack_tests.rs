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

/// A token source wrapper that records what the client's cache asks of it.
#[derive(Clone, Default)]
struct Recorder {
    fetches: std::sync::Arc<std::sync::atomic::AtomicU32>,
    invalidated: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

struct Recording {
    inner: Box<dyn keel_layers::auth::TokenSource>,
    log: Recorder,
}

impl keel_layers::auth::TokenSource for Recording {
    fn fetch(&self) -> keel_layers::auth::FetchFuture {
        self.log
            .fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.fetch()
    }

    fn invalidate(
        &self,
        rejected: &keel_layers::auth::Token,
    ) -> keel_layers::auth::InvalidateFuture {
        let value = rejected.header_value().to_str().unwrap().to_owned();
        self.log.invalidated.lock().unwrap().push(value);
        self.inner.invalidate(rejected)
    }
}

/// A rate state that lets everything through and records the gate closures.
#[derive(Debug, Clone, Default)]
struct Gate {
    acquired: std::sync::Arc<std::sync::atomic::AtomicU32>,
    closes: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl keel_layers::backoff::RateState for Gate {
    fn try_acquire(&self, _now: tokio::time::Instant) -> Result<(), tokio::time::Instant> {
        self.acquired
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn close_until(&self, _until: tokio::time::Instant) {
        self.closes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn the_token_source_and_rate_state_hooks_see_grants_rejections_and_429s() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    let grants = Arc::new(AtomicU32::new(0));
    let token = {
        let grants = grants.clone();
        tower::service_fn(move |_: Request<Full<Bytes>>| {
            let n = grants.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let body =
                    format!(r#"{{"access_token":"t{n}","token_type":"bearer","expires_in":3600}}"#);
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            }
        })
    };
    let calls = Arc::new(AtomicU32::new(0));
    let api = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        let auth = req.headers()[http::header::AUTHORIZATION]
            .to_str()
            .unwrap()
            .to_owned();
        async move {
            let mut res = Response::new(Full::new(Bytes::from(
                r#"{"totalHits":1,"conversations":[{"conversationId":"c-1"}]}"#,
            )));
            if auth == "Bearer t1" {
                *res.status_mut() = http::StatusCode::UNAUTHORIZED;
            } else if call == 1 {
                *res.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
                res.headers_mut()
                    .insert("retry-after", http::HeaderValue::from_static("1"));
            }
            Ok::<_, Infallible>(res)
        }
    });
    let log = Recorder::default();
    let gate = Gate::default();
    let env = Environment::custom("http://127.0.0.1:9", "http://127.0.0.1:9").unwrap();
    let builder = Client::builder(env, Credentials::new("id", SecretString::from("secret")))
        .token_source({
            let log = log.clone();
            move |inner| Recording { inner, log }
        })
        .rate_state(gate.clone());
    let client = assemble(builder, token, api).unwrap();
    let pages: Vec<_> = client
        .conversation_details(query())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(log.fetches.load(Ordering::SeqCst), 2);
    assert_eq!(grants.load(Ordering::SeqCst), 2);
    assert_eq!(*log.invalidated.lock().unwrap(), ["Bearer t1"]);
    assert_eq!(gate.closes.load(Ordering::SeqCst), 1);
    assert!(gate.acquired.load(Ordering::SeqCst) >= 3);
}
