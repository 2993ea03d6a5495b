//! What the upstream is told about the caller's address: `X-Forwarded-For`, `Forwarded`,
//! `X-Real-IP`.
//!
//! A caller can put anything in these headers. An upstream that logs, rate-limits or
//! allow-lists by client address would believe it if the gateway passed them on as they
//! came, so by default the gateway replaces them with what it knows itself.

use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderName, HeaderValue, FORWARDED};
use http::{Extensions, HeaderMap};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// Claims about the caller's request that only a proxy the upstream trusts may make.
const CLAIMS: [HeaderName; 3] = [
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-port"),
];

/// How the [`Gateway`](crate::Gateway) treats the caller's forwarding headers
/// (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`, and `X-Forwarded-Host`, `-Proto`, `-Port`).
///
/// The caller's address is the peer address of its connection, read from the request's
/// extensions (see [`GatewayLayer::peer_addr`](crate::GatewayLayer::peer_addr)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Forwarding {
    /// Drops what the caller claims. When the peer address is known, `X-Forwarded-For`,
    /// `X-Real-IP` (its IP) and `Forwarded` (`for=<IP>`) are set to it; otherwise none is
    /// sent. The default: callers reach the gateway directly.
    #[default]
    Replace,
    /// Keeps the caller's headers and appends the peer address to the `X-Forwarded-For`
    /// and `Forwarded` chains (`X-Real-IP` is set to it only when absent). Only for a
    /// gateway that is reached solely through proxies that set these headers themselves:
    /// whatever the first hop claims is passed on.
    Append,
    /// Drops what the caller claims and sends none of these headers: the upstream learns
    /// no client address.
    Remove,
}

/// Reads the caller's peer address from a request's extensions.
pub type PeerAddrFn = fn(&Extensions) -> Option<SocketAddr>;

/// The default [`PeerAddrFn`]: a [`SocketAddr`] extension, as a hyper server loop inserts
/// with `req.extensions_mut().insert(remote_addr)`.
pub(crate) fn socket_addr_extension(extensions: &Extensions) -> Option<SocketAddr> {
    extensions.get::<SocketAddr>().copied()
}

impl Forwarding {
    /// Rewrites the forwarding headers of a request from `peer`.
    pub(crate) fn apply(self, headers: &mut HeaderMap, peer: Option<IpAddr>) {
        if self == Forwarding::Append {
            if let Some(ip) = peer {
                append(headers, X_FORWARDED_FOR, ip_value(ip));
                append(headers, FORWARDED, forwarded_for(ip));
                if !headers.contains_key(&X_REAL_IP) {
                    headers.insert(X_REAL_IP, ip_value(ip));
                }
            }
            return;
        }
        for name in [X_FORWARDED_FOR, FORWARDED, X_REAL_IP]
            .iter()
            .chain(&CLAIMS)
        {
            headers.remove(name);
        }
        if let (Forwarding::Replace, Some(ip)) = (self, peer) {
            headers.insert(X_FORWARDED_FOR, ip_value(ip));
            headers.insert(X_REAL_IP, ip_value(ip));
            headers.insert(FORWARDED, forwarded_for(ip));
        }
    }
}

/// Joins every `name` line and `last` into one comma-separated line.
fn append(headers: &mut HeaderMap, name: HeaderName, last: HeaderValue) {
    let mut joined = Vec::new();
    for value in headers.get_all(&name) {
        joined.extend_from_slice(value.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(last.as_bytes());
    // NOTE: header values joined by ", " are a valid header value.
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(name, value);
    }
}

fn ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// The `Forwarded` element for `ip` (RFC 7239 §6: an IPv6 address is bracketed and quoted).
fn forwarded_for(ip: IpAddr) -> HeaderValue {
    let value = match ip {
        IpAddr::V4(v4) => format!("for={v4}"),
        IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("for=unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed() -> HeaderMap {
        [
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "10.0.0.1"),
            ("forwarded", "for=203.0.113.7;proto=https"),
            ("x-real-ip", "203.0.113.7"),
            ("x-forwarded-host", "admin.internal"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-port", "443"),
            ("x-request-id", "r-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
        .collect()
    }

    fn values(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn replace_sets_the_peer_and_drops_every_claim() {
        let mut h = claimed();
        Forwarding::Replace.apply(&mut h, Some("192.0.2.10".parse().unwrap()));
        assert_eq!(values(&h, "x-forwarded-for"), ["192.0.2.10"]);
        assert_eq!(values(&h, "x-real-ip"), ["192.0.2.10"]);
        assert_eq!(values(&h, "forwarded"), ["for=192.0.2.10"]);
        for gone in ["x-forwarded-host", "x-forwarded-proto", "x-forwarded-port"] {
            assert!(!h.contains_key(gone), "{gone} was kept");
        }
        assert_eq!(values(&h, "x-request-id"), ["r-1"]);
    }

    #[test]
    fn replace_without_a_peer_drops_every_claim() {
        let mut h = claimed();
        Forwarding::Replace.apply(&mut h, None);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-request-id"]);
    }

    #[test]
    fn remove_sends_no_address_even_when_the_peer_is_known() {
        let mut h = claimed();
        Forwarding::Remove.apply(&mut h, Some("192.0.2.10".parse().unwrap()));
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-request-id"]);
    }

    #[test]
    fn append_adds_the_peer_to_each_chain_and_keeps_the_rest() {
        let mut h = claimed();
        Forwarding::Append.apply(&mut h, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(
            values(&h, "x-forwarded-for"),
            ["203.0.113.7, 10.0.0.1, 2001:db8::1"]
        );
        assert_eq!(
            values(&h, "forwarded"),
            ["for=203.0.113.7;proto=https, for=\"[2001:db8::1]\""]
        );
        assert_eq!(values(&h, "x-real-ip"), ["203.0.113.7"]);
        assert_eq!(values(&h, "x-forwarded-host"), ["admin.internal"]);

        let mut h = HeaderMap::new();
        Forwarding::Append.apply(&mut h, Some("192.0.2.10".parse().unwrap()));
        assert_eq!(values(&h, "x-forwarded-for"), ["192.0.2.10"]);
        assert_eq!(values(&h, "x-real-ip"), ["192.0.2.10"]);
        assert_eq!(values(&h, "forwarded"), ["for=192.0.2.10"]);
    }

    #[test]
    fn append_without_a_peer_changes_nothing() {
        let mut h = claimed();
        Forwarding::Append.apply(&mut h, None);
        assert_eq!(h, claimed());
    }
}
