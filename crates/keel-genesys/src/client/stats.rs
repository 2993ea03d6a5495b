//! Counters of the client's layers.

use serde::Serialize;

/// A snapshot of what the client's layers did so far (all clones of a client share them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClientStats {
    /// Access tokens fetched from the token endpoint.
    pub token_fetches: u64,
    /// Token fetches that failed.
    pub token_failures: u64,
    /// Requests replayed after a 401 with a fresh token.
    pub replays_401: u64,
    /// Waits after a 429 (or pacing-gate holds after one).
    pub waits_429: u64,
    /// Other retries: 503, 502/504, transport errors.
    pub other_retries: u64,
    /// Read-only requests sent again because their 2xx body could not be decoded (invalid
    /// JSON, a conversation without an id); see [`ClientBuilder::decode_retries`].
    ///
    /// [`ClientBuilder::decode_retries`]: super::ClientBuilder::decode_retries
    pub decode_retries: u64,
}
