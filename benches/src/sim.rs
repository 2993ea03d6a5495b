//! keel-sim on its own thread, and measurement 6: the simulator's own throughput.
//!
//! The simulator runs on a dedicated thread with its own single-threaded runtime, like the
//! loopback server of the overhead bench, so a client under test gets the other core. The
//! throughput figure is token-authenticated conversation-details pages per second, through a
//! bare hyper client with the token fetched once: what the simulator itself can serve.
//!
//! # Example
//!
//! ```
//! use keel_bench::sim::{fetch_token, SimThread};
//! use keel_sim::Simulator;
//!
//! let sim = SimThread::start(Simulator::builder().conversations(10)).unwrap();
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let token = fetch_token(&sim).await.unwrap();
//! assert!(!token.is_empty());
//! # });
//! assert_eq!(sim.handle().stats().tokens_issued, 1);
//! ```

use std::thread::JoinHandle;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keel_sim::{SimBuilder, SimHandle};
use tokio::sync::oneshot;
use tower::BoxError;

use crate::clients::drain;
use crate::load::Target;

/// A simulator serving on its own thread; it stops when dropped.
#[derive(Debug)]
pub struct SimThread {
    handle: Option<SimHandle>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SimThread {
    /// Starts `builder`'s simulator on a new thread.
    ///
    /// # Errors
    ///
    /// When the runtime cannot be built or the simulator cannot start.
    pub fn start(builder: SimBuilder) -> Result<Self, BoxError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-sim".into())
            .spawn(move || {
                let started = runtime.block_on(builder.start());
                let ok = started.is_ok();
                let _ = started_tx.send(started);
                if ok {
                    let _ = runtime.block_on(stopped);
                }
            })?;
        let handle = started_rx.recv()??;
        Ok(Self {
            handle: Some(handle),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The simulator (URLs, credentials, counters).
    pub fn handle(&self) -> &SimHandle {
        self.handle.as_ref().expect("present until drop")
    }
}

impl Drop for SimThread {
    fn drop(&mut self) {
        drop(self.handle.take());
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Fetches an access token from the simulator with its client credentials.
///
/// # Errors
///
/// When the token request fails or its answer has no `access_token`.
pub async fn fetch_token(sim: &SimThread) -> Result<String, BoxError> {
    let sim = sim.handle();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        sim.client_id(),
        sim.client_secret()
    ));
    let req = Request::builder()
        .method(Method::POST)
        .uri(sim.token_url())
        .header(AUTHORIZATION, format!("Basic {basic}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(
            b"grant_type=client_credentials",
        )))?;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let res = client.request(req).await?;
    if !res.status().is_success() {
        return Err(format!("token request answered {}", res.status()).into());
    }
    let body = Limited::new(res.into_body(), 64 * 1024)
        .collect()
        .await?
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    json["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "token answer without access_token".into())
}

/// One conversation-details query page, `POST`ed with a bearer token through a bare client.
#[derive(Debug, Clone)]
pub struct SimPageTarget {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    authorization: HeaderValue,
    body: Bytes,
}

impl SimPageTarget {
    /// Requests page 1 of `page_size` conversations over all of the simulator's data.
    ///
    /// # Errors
    ///
    /// When the token is not a valid header value.
    pub fn new(sim: &SimThread, token: &str, page_size: u32) -> Result<Self, BoxError> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let body = serde_json::json!({
            "interval": "2000-01-01T00:00:00Z/2100-01-01T00:00:00Z",
            "paging": { "pageSize": page_size, "pageNumber": 1 },
        });
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))?;
        authorization.set_sensitive(true);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            uri: format!(
                "{}/api/v2/analytics/conversations/details/query",
                sim.handle().base_url()
            )
            .parse()?,
            authorization,
            body: Bytes::from(serde_json::to_vec(&body)?),
        })
    }
}

impl Target for SimPageTarget {
    async fn call(&mut self) -> Result<(), BoxError> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(self.body.clone()))?;
        drain(self.client.request(req).await?).await
    }
}
