//! Shared helpers of the keel-redis integration tests.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_layers::auth::{token_source_fn, Token, TokenSource};
use keel_redis::{RedisConfig, RedisConnection};
use secrecy::SecretString;

/// A key prefix of its own for each test sharing one server.
pub fn prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig::new(SecretString::from(url.to_owned()))
        .unwrap()
        .prefix(prefix)
}

pub fn connect(url: &str, prefix: &str) -> RedisConnection {
    config(url, prefix).connect().unwrap()
}

/// A token endpoint stand-in: hands out `SECRET-TOKEN-1`, `SECRET-TOKEN-2`, … valid for
/// `lifetime`, after `delay`; counts its calls.
pub fn counting_source(
    lifetime: Duration,
    delay: Duration,
) -> (impl TokenSource + Clone + std::fmt::Debug, Arc<AtomicU32>) {
    let count = Arc::new(AtomicU32::new(0));
    let c = count.clone();
    let source = token_source_fn(move || {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::time::sleep(delay).await;
            Token::bearer(&format!("SECRET-TOKEN-{n}"), Some(lifetime))
        }
    });
    (source, count)
}

/// Everything logged while the returned guard lives, at every level.
pub fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || Writer(sink.clone()))
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

pub fn logged(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits (up to `within`) until `cond` holds; for local state that a background task updates.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + within;
    while std::time::Instant::now() < until {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    cond()
}
