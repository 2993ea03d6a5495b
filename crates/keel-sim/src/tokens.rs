//! Issued access tokens, their expiry and their early revocation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::data::hash::{h3, mix};
use crate::state::later;

#[derive(Debug)]
struct Entry {
    client: usize,
    expires_at: Instant,
    revoke_at: Option<Instant>,
    uses: AtomicU64,
    revoked: AtomicBool,
    /// Set at the first refusal of this token as revoked.
    refused_as_revoked: AtomicBool,
}

/// The verdict on a request's `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Valid,
    Missing,
    Unknown,
    Expired,
    Revoked,
}

/// The verdict on a request's token, and whose token it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    pub(crate) verdict: Verdict,
    /// The client the token was issued to (when it is one of ours).
    pub(crate) client: Option<usize>,
    /// This is the first time the token is refused as revoked.
    pub(crate) first_revocation: bool,
}

/// All tokens issued so far.
#[derive(Debug)]
pub(crate) struct TokenStore {
    seed: u64,
    lifetime: Duration,
    revoke_after: Option<Duration>,
    revoke_after_requests: Option<u64>,
    issued: AtomicU64,
    map: RwLock<HashMap<String, Arc<Entry>>>,
}

impl TokenStore {
    pub(crate) fn new(
        seed: u64,
        lifetime: Duration,
        revoke_after: Option<Duration>,
        revoke_after_requests: Option<u64>,
    ) -> Self {
        Self {
            seed,
            lifetime,
            revoke_after,
            revoke_after_requests,
            issued: AtomicU64::new(0),
            map: RwLock::new(HashMap::new()),
        }
    }

    /// Issues a new token for client number `client`, valid from `now`.
    pub(crate) fn issue(&self, now: Instant, client: usize) -> String {
        let n = self.issued.fetch_add(1, Relaxed);
        let token = format!(
            "sim-{:016x}{:016x}{:08x}",
            h3(self.seed, n, 30),
            mix(n ^ self.seed.rotate_left(17)),
            n
        );
        let entry = Entry {
            client,
            expires_at: later(now, self.lifetime),
            revoke_at: self.revoke_after.map(|d| later(now, d)),
            uses: AtomicU64::new(0),
            revoked: AtomicBool::new(false),
            refused_as_revoked: AtomicBool::new(false),
        };
        self.map
            .write()
            .expect("token map poisoned")
            .insert(token.clone(), Arc::new(entry));
        token
    }

    fn lookup(&self, token: &str) -> Option<Arc<Entry>> {
        self.map
            .read()
            .expect("token map poisoned")
            .get(token)
            .cloned()
    }

    /// Checks a raw `Authorization` header value and, if valid, counts one use of the token.
    #[cfg(test)]
    pub(crate) fn check(&self, authorization: Option<&[u8]>, now: Instant) -> Verdict {
        self.check_client(authorization, now).verdict
    }

    /// Like `check`, also naming the client the token was issued to (when it is ours).
    pub(crate) fn check_client(&self, authorization: Option<&[u8]>, now: Instant) -> Checked {
        let refuse = |verdict| Checked {
            verdict,
            client: None,
            first_revocation: false,
        };
        let Some(token) = authorization.and_then(bearer) else {
            return refuse(Verdict::Missing);
        };
        let Some(entry) = self.lookup(token) else {
            return refuse(Verdict::Unknown);
        };
        let verdict = if entry.revoked.load(Relaxed) || entry.revoke_at.is_some_and(|at| now >= at)
        {
            Verdict::Revoked
        } else if now >= entry.expires_at {
            Verdict::Expired
        } else if self
            .revoke_after_requests
            .is_some_and(|limit| entry.uses.fetch_add(1, Relaxed) >= limit)
        {
            entry.revoked.store(true, Relaxed);
            Verdict::Revoked
        } else {
            Verdict::Valid
        };
        Checked {
            verdict,
            client: Some(entry.client),
            first_revocation: verdict == Verdict::Revoked
                && !entry.refused_as_revoked.swap(true, Relaxed),
        }
    }

    /// Revokes the token in an `Authorization` value, if it is one of ours; returns
    /// whose it is and whether this is its first refusal as revoked.
    pub(crate) fn revoke_presented(&self, authorization: Option<&[u8]>) -> Option<(usize, bool)> {
        let entry = self.lookup(authorization.and_then(bearer)?)?;
        entry.revoked.store(true, Relaxed);
        Some((entry.client, !entry.refused_as_revoked.swap(true, Relaxed)))
    }

    /// Revokes every token issued so far.
    pub(crate) fn revoke_all(&self) {
        for entry in self.map.read().expect("token map poisoned").values() {
            entry.revoked.store(true, Relaxed);
        }
    }
}

fn bearer(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(token: &str) -> Vec<u8> {
        format!("Bearer {token}").into_bytes()
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_expire_at_their_advertised_lifetime() {
        let store = TokenStore::new(1, Duration::from_secs(60), None, None);
        let t = store.issue(Instant::now(), 0);
        assert_eq!(
            store.check(Some(&header(&t)), Instant::now()),
            Verdict::Valid
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            store.check(Some(&header(&t)), Instant::now()),
            Verdict::Expired
        );
    }

    #[tokio::test(start_paused = true)]
    async fn time_based_revocation_comes_before_expiry() {
        let store = TokenStore::new(
            1,
            Duration::from_secs(60),
            Some(Duration::from_secs(10)),
            None,
        );
        let t = store.issue(Instant::now(), 0);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(
            store.check(Some(&header(&t)), Instant::now()),
            Verdict::Valid
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            store.check(Some(&header(&t)), Instant::now()),
            Verdict::Revoked
        );
    }

    #[test]
    fn count_based_revocation_allows_exactly_n_requests() {
        let store = TokenStore::new(1, Duration::from_secs(60), None, Some(3));
        let now = Instant::now();
        let t = store.issue(now, 0);
        for _ in 0..3 {
            assert_eq!(store.check(Some(&header(&t)), now), Verdict::Valid);
        }
        assert_eq!(store.check(Some(&header(&t)), now), Verdict::Revoked);
        let fresh = store.issue(now, 0);
        assert_ne!(fresh, t);
        assert_eq!(store.check(Some(&header(&fresh)), now), Verdict::Valid);
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_told_apart() {
        let store = TokenStore::new(1, Duration::from_secs(60), None, None);
        let now = Instant::now();
        assert_eq!(store.check(None, now), Verdict::Missing);
        assert_eq!(store.check(Some(b"Basic abc"), now), Verdict::Missing);
        assert_eq!(store.check(Some(b"Bearer "), now), Verdict::Missing);
        assert_eq!(store.check(Some(b"Bearer nope"), now), Verdict::Unknown);
    }
}
