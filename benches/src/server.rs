//! A minimal hyper HTTP/1 server on loopback, the common target of the overhead bench.
//!
//! It answers every request with the same small JSON body, on its own thread and its own
//! single-threaded runtime, so the clients under test get the other core and the server's
//! allocations are never counted against a client.
//!
//! # Example
//!
//! ```
//! let server = keel_bench::server::LoopbackServer::start().unwrap();
//! assert!(server.addr().ip().is_loopback());
//! ```

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use http::{header, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

/// The body every request gets: a small JSON document, like a one-record API answer.
pub const BODY: &[u8] = br#"{"id":"0f5a2c1e-bench","state":"ok","items":[1,2,3],"total":3}"#;

/// A running loopback server; it stops when dropped.
#[derive(Debug)]
pub struct LoopbackServer {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    /// Binds `127.0.0.1:0` and serves on a new thread.
    ///
    /// # Errors
    ///
    /// When the socket cannot be bound or the server's runtime cannot be built.
    pub fn start() -> io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let served = Arc::new(AtomicU64::new(0));
        let (shutdown, stop) = oneshot::channel();
        let counter = served.clone();
        let thread = std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || runtime.block_on(serve(listener, counter, stop)))?;
        Ok(Self {
            addr,
            served,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    served: Arc<AtomicU64>,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let served = served.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            served.fetch_add(1, Ordering::Relaxed);
            answer(req)
        });
        tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
    }
}

async fn answer(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::from_static(BODY)));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(res)
}
