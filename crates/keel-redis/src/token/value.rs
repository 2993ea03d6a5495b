//! The stored form of a shared token: `<fingerprint> <refresh ms> <authorization value>`.

use std::time::Duration;

use http::HeaderValue;
use keel_layers::auth::Token;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// A token's fingerprint: the first 128 bits of the SHA-256 of its `Authorization` value, in
/// hex. Identifies the token in Redis without revealing it.
pub(crate) fn fingerprint(token: &HeaderValue) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored value for `token`, fresh until `refresh` is left of its TTL.
pub(super) fn encode(token: &Token, refresh: Duration) -> Vec<u8> {
    let header = token.header_value();
    let mut value = format!("{} {} ", fingerprint(header), refresh.as_millis()).into_bytes();
    value.extend_from_slice(header.as_bytes());
    value
}

/// The token in a stored value that has `pttl_ms` left; `None` for a malformed value.
pub(super) fn decode(value: &[u8], pttl_ms: i64) -> Option<Token> {
    let mut parts = value.splitn(3, |b| *b == b' ');
    let (_fingerprint, _refresh, header) = (parts.next()?, parts.next()?, parts.next()?);
    let header = HeaderValue::from_bytes(header).ok()?;
    let left = Duration::from_millis(u64::try_from(pttl_ms).ok()?);
    Some(Token::new(header, Instant::now().checked_add(left)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_fingerprint_hides_the_token() {
        let token = Token::bearer("SECRET-TOKEN", None).unwrap();
        let value = encode(&token, Duration::from_secs(60));
        let fp = fingerprint(token.header_value());
        assert_eq!(fp.len(), 32);
        assert!(!fp.contains("SECRET"));
        assert!(value.starts_with(format!("{fp} 60000 Bearer ").as_bytes()));
        let back = decode(&value, 5_000).unwrap();
        assert_eq!(back.header_value(), token.header_value());
        assert!(back.header_value().is_sensitive());
        assert!(back.expires_at().unwrap() <= Instant::now() + Duration::from_secs(5));
        assert!(decode(b"garbage", 5_000).is_none());
        assert!(decode(&value, -1).is_none());
    }
}
