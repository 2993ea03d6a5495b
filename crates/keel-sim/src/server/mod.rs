//! The loopback HTTP server: accept loop, per-connection hyper service, shutdown.

pub(crate) mod body;
pub(crate) mod reply;
mod router;

pub(crate) use router::{not_found, read_body as read_body_pub};

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::State;

/// Serves connections until `shutdown` fires (or its sender is dropped).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "keel-sim accept failed");
                // NOTE: back off so a persistent error (e.g. out of file descriptors) cannot spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| router::serve(state.clone(), req));
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // NOTE: no header-read timeout: a timer would let tokio's paused clock (used by tests
            // that run the simulator in-process) fire it while the runtime waits on the socket.
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(None);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}
