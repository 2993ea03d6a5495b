//! Scripted services and bodies shared by the test suites.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use tokio::time::{sleep, Instant};
use tower::{BoxError, Service};

use crate::replay::TryCloneBody;

pub(crate) type Reply = Result<Response<Full<Bytes>>, BoxError>;

/// A scripted server: `script(n, t)` answers the `n`th request (from 0) arriving `t` after
/// the mock was made, after `latency`. Arrival times are recorded.
#[derive(Clone)]
pub(crate) struct Mock {
    pub(crate) arrivals: Arc<Mutex<Vec<Duration>>>,
    script: Arc<dyn Fn(usize, Duration) -> Reply + Send + Sync>,
    latency: Duration,
    start: Instant,
}

impl Mock {
    pub(crate) fn new(script: impl Fn(usize, Duration) -> Reply + Send + Sync + 'static) -> Self {
        Mock {
            arrivals: Arc::default(),
            script: Arc::new(script),
            latency: Duration::ZERO,
            start: Instant::now(),
        }
    }

    pub(crate) fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    pub(crate) fn arrivals(&self) -> Vec<Duration> {
        self.arrivals.lock().unwrap().clone()
    }
}

impl<B: Send + 'static> Service<Request<B>> for Mock {
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Reply>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let at = self.start.elapsed();
        let n = {
            let mut arrivals = self.arrivals.lock().unwrap();
            arrivals.push(at);
            arrivals.len() - 1
        };
        let reply = (self.script)(n, at);
        let latency = self.latency;
        Box::pin(async move {
            sleep(latency).await;
            reply
        })
    }
}

pub(crate) fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    Ok(builder.body(Full::new(Bytes::from(body.to_owned())))?)
}

pub(crate) fn get() -> Request<Full<Bytes>> {
    Request::get("http://api.test/x")
        .body(Full::default())
        .unwrap()
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(crate) async fn body_text(response: Response<Full<Bytes>>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A request body that can be cloned until the "first attempt" reads it, which marks it
/// over its replay cap, as a `ReplayBody` past its cap would.
pub(crate) struct CappedBody {
    pub(crate) data: Bytes,
    pub(crate) over_cap: Arc<AtomicBool>,
}

impl http_body::Body for CappedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.over_cap.store(true, Ordering::SeqCst);
        let data = std::mem::take(&mut self.data);
        Poll::Ready((!data.is_empty()).then(|| Ok(Frame::data(data))))
    }
}

impl TryCloneBody for CappedBody {
    fn try_clone_body(&self) -> Option<Self> {
        (!self.over_cap.load(Ordering::SeqCst)).then(|| CappedBody {
            data: self.data.clone(),
            over_cap: self.over_cap.clone(),
        })
    }
}

/// A service that counts how often it is cloned.
pub(crate) struct CountClones<S> {
    pub(crate) inner: S,
    pub(crate) clones: Arc<AtomicUsize>,
}

impl<S: Clone> Clone for CountClones<S> {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        CountClones {
            inner: self.inner.clone(),
            clones: Arc::clone(&self.clones),
        }
    }
}

impl<S: Service<R>, R> Service<R> for CountClones<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.inner.call(req)
    }
}
